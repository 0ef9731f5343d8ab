"""Reading critiques back, in either critique format (`prompts.CRITIQUE_FORMATS`).

"sections" (ReasonEdit, the default) is the structure `prompts.CRITIQUE_FORMAT` writes;
"think_answer" is IE-Critic-R1's `<think>...</think><answer>score</answer>` (data/think_answer.py).

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

from ie_eval.data.prompts import CRITIQUE_FORMATS, DIM_TITLES, FINAL_ASSESSMENT, SCORE_RANGE
from ie_eval.data.records import MOS_DIMS
from ie_eval.data.think_answer import answer_score, format_think_answer, overall_of, think_text, well_formed

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
        assessment, or None when any of the three is missing or outside SCORE_RANGE (always None
        in the think_answer format, which gives one overall score).
    observations: {dim: text} of the per-dimension sections that are present.
    answer: think_answer only: the `<answer>` score (IE-Critic-R1's rule, range not checked).
    well_formed: think_answer only: the whole text matches IE-Critic-R1's format.
    """

    scores: Scores | None
    observations: dict[str, str] = field(default_factory=dict)
    critique_format: str = "sections"
    answer: float | None = None
    well_formed: bool = False

    @property
    def overall(self) -> float | None:
        """One overall score: the answer (think_answer) or the mean of the three scores (sections)."""
        if self.critique_format == "think_answer":
            return self.answer
        return None if self.scores is None else overall_of(self.scores)

    @property
    def parsed(self) -> bool:
        """The critique's score(s) could be read (what the format-stability rate counts)."""
        return self.overall is not None

    @property
    def structured(self) -> bool:
        """The full structure: every dimension's section + the three scores (sections), or IE-Critic-R1's
        format-reward match (think_answer)."""
        if self.critique_format == "think_answer":
            return self.well_formed
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


def check_critique_format(name: str) -> str:
    if name not in CRITIQUE_FORMATS:
        raise ValueError(f"unknown critique_format {name!r}; choose one of {CRITIQUE_FORMATS}")
    return name


def parse_critique(text: str, critique_format: str = "sections") -> ParsedCritique:
    """Scores and observations of one critique in the given format; never raises on the text."""
    if check_critique_format(critique_format) == "think_answer":
        return ParsedCritique(
            scores=None, observations=parse_observations(think_text(text)), critique_format="think_answer",
            answer=answer_score(text), well_formed=well_formed(text),
        )
    return ParsedCritique(scores=parse_final_assessment(text), observations=parse_observations(text))


def sft_target(critique: str, critique_format: str = "sections") -> str | None:
    """The SFT answer text for a record's critique in the given format; None when it cannot be written.

    think_answer: the critique's observations (all before its final assessment) as the reasoning
    and the mean of its three final scores as the answer, so the target says what the
    critique says, in IE-Critic-R1's shape.
    """
    if check_critique_format(critique_format) == "sections":
        return critique
    scores = parse_final_assessment(critique)
    if scores is None:
        return None
    reasoning = re.split(re.escape(FINAL_ASSESSMENT), critique, flags=re.IGNORECASE)[0]
    return format_think_answer(reasoning, overall_of(scores)) if reasoning.strip() else None


def format_failure_rate(texts: Iterable[str], critique_format: str = "sections") -> float:
    """Fraction of texts whose score(s) cannot be parsed (NaN for no texts)."""
    results = [not parse_critique(text, critique_format).parsed for text in texts]
    return sum(results) / len(results) if results else math.nan
