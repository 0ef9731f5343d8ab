"""Reading critiques back: the parser of the structure `prompts.CRITIQUE_FORMAT` writes.

A critique is one `[Title]` section of observations per MOS dimension, then `[Final Assessment]`
with three `Title: score` lines. The final-assessment parser also reads the synthetic
benchmark's one-line (`visual quality: 4/5; ...`) and JSON (`{"visual quality": 4, ...}`)
forms, so one function serves SFT targets, generated critiques and the synthetic data.
Nothing here raises on malformed text: a critique that cannot be read has `scores=None`,
and `format_failure_rate` counts those.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ie_eval.data.prompts import DIM_TITLES, FINAL_ASSESSMENT, SCORE_RANGE
from ie_eval.data.records import MOS_DIMS

Scores = tuple[float, float, float]

_FINAL_RE = re.compile(re.escape(FINAL_ASSESSMENT), flags=re.IGNORECASE)
# `Title: 4`, `title: 4/5`, `"title": 4` and `"title": "4"`, case-insensitive.
_SCORE_RES = tuple(
    re.compile(rf'{re.escape(DIM_TITLES[dim])}"?\s*:\s*"?(\d+(?:\.\d+)?)', flags=re.IGNORECASE) for dim in MOS_DIMS
)
_TITLE_DIMS = {DIM_TITLES[dim].lower(): dim for dim in MOS_DIMS}
_HEADER_RE = re.compile(
    r"\[(" + "|".join(re.escape(t) for t in [*DIM_TITLES.values(), FINAL_ASSESSMENT[1:-1]]) + r")\]",
    flags=re.IGNORECASE,
)


@dataclass(frozen=True)
class ParsedCritique:
    """What could be read from one critique text.

    scores: (visual_quality, instruction_alignment, content_preservation) from the last final
        assessment, or None when any of the three is missing or outside SCORE_RANGE.
    observations: {dim: text} of the per-dimension sections that are present.
    """

    scores: Scores | None
    observations: dict[str, str] = field(default_factory=dict)

    @property
    def parsed(self) -> bool:
        """The final assessment gave all three scores (what the format-stability rate counts)."""
        return self.scores is not None

    @property
    def structured(self) -> bool:
        """Parsed, and every dimension has its observations section."""
        return self.parsed and all(dim in self.observations for dim in MOS_DIMS)


def parse_final_assessment(text: str) -> Scores | None:
    """The three scores after the last `[Final Assessment]`, in any of the three forms; None if unreadable."""
    if not isinstance(text, str):
        return None
    matches = list(_FINAL_RE.finditer(text))
    if not matches:
        return None
    tail = text[matches[-1].end() :]
    low, high = SCORE_RANGE
    scores = []
    for pattern in _SCORE_RES:
        match = pattern.search(tail)
        if match is None:
            return None
        value = float(match.group(1))
        if not (math.isfinite(value) and low <= value <= high):
            return None
        scores.append(value)
    return (scores[0], scores[1], scores[2])


def parse_observations(text: str) -> dict[str, str]:
    """{dim: section text} for each `[Title]` section before the first final assessment (first one wins)."""
    if not isinstance(text, str):
        return {}
    headers = list(_HEADER_RE.finditer(text))
    observations: dict[str, str] = {}
    for index, header in enumerate(headers):
        dim = _TITLE_DIMS.get(header.group(1).lower())
        if dim is None:  # the final assessment ends the observations
            break
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        observations.setdefault(dim, text[header.end() : end].strip())
    return observations


def parse_critique(text: str) -> ParsedCritique:
    """Scores and observations of one critique; never raises."""
    return ParsedCritique(scores=parse_final_assessment(text), observations=parse_observations(text))


def format_failure_rate(texts: Iterable[str]) -> float:
    """Fraction of texts whose final assessment cannot be parsed (NaN for no texts)."""
    results = [parse_final_assessment(text) is None for text in texts]
    return sum(results) / len(results) if results else math.nan
