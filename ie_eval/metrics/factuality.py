"""Critique factuality: the share of a critique's claims that are true of the edited image.

Only a world with known truth allows it. A claim is one sentence (or `;` clause) of the
critique's observations. Against the edited image's synthetic facts (`target`, `others`,
`quality`) it is:

- true: it states one of the image's facts, or a vague verdict ("the rest looks about the
  same") that agrees with the fact's good/bad flag;
- false: it has the shape of a known fact (the same template once shape, colour, place,
  size, number and texture words are abstracted; or a vague verdict) but is not true here;
- unverifiable: it matches no known fact template.

factuality = true / (true + false); the share of unverifiable claims is reported beside it.
Templates come from the world's editor itself (`world_fact_templates`: the facts of a few
thousand seeded edits of every task and failure mode), so they do not depend on the benchmark
being scored.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torchmetrics import Metric

from ie_eval.data.critique_format import parse_observations
from ie_eval.data.prompts import FINAL_ASSESSMENT
from ie_eval.data.synth.critiques import VAGUE_TEXT
from ie_eval.data.synth.editor import ARTIFACT_FACTS
from ie_eval.data.synth.facts import CLEAN, UNCHANGED
from ie_eval.data.synth.global_edits import HALF_RESTORED, MISPROCESSED, RESTORED, STYLE_LOOKS
from ie_eval.data.synth.instructions import NUMBER_WORDS, PLACES, TEXTURE_WORDS, plural
from ie_eval.data.synth.scenes import BACKGROUND_COLORS, OBJECT_COLORS, SHAPES, SIZES
from ie_eval.data.think_answer import think_text

NO_OBSERVATION = "no specific observation"
# World words a fact template abstracts, longest first so "sky blue" wins over "blue".
_SLOTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("<place>", tuple(PLACES.values())),
    ("<shape>", tuple(plural(s) for s in SHAPES) + SHAPES),
    ("<color>", tuple(BACKGROUND_COLORS) + tuple(OBJECT_COLORS)),
    ("<texture>", tuple(TEXTURE_WORDS.values())),
    ("<number>", tuple(NUMBER_WORDS.values())),
    ("<size>", tuple(SIZES)),
)
_SLOT_RES = tuple(
    (slot, re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")\b"))
    for slot, words in _SLOTS
)
_SPLIT = re.compile(r"(?<=[.;])\s+|\n+")


def normalize_claim(text: str) -> str:
    """Lower case, single spaces, no list marker or trailing punctuation."""
    text = re.sub(r"^\s*(?:[-*\u2022]|\d+[.)])\s*", "", text.strip().lower())
    return " ".join(text.split()).rstrip(" .;:,")


def claim_template(text: str) -> str:
    """The claim with world words replaced by slots: "the star is now red" -> "the <shape> is now <color>"."""
    template = normalize_claim(text)
    for slot, pattern in _SLOT_RES:
        template = pattern.sub(slot, template)
    # "a <color> <shape>" / "an <color> <shape>": the article follows the colour word.
    return re.sub(r"\ban? (?=<)", "a ", template)


def world_fact_texts() -> list[str]:
    """Facts whose text does not depend on the scene (restorations, styles, artifacts, defaults)."""
    texts = [UNCHANGED.text, CLEAN.text, *(f.text for f in ARTIFACT_FACTS.values())]
    texts += [*RESTORED.values(), *HALF_RESTORED.values(), *MISPROCESSED.values()]
    return texts + [text for _, text in STYLE_LOOKS.values()]


def known_templates(fact_texts: Iterable[str]) -> frozenset[str]:
    """Templates of the given fact texts plus the world's fixed facts."""
    return frozenset(claim_template(t) for t in [*fact_texts, *world_fact_texts()])


@functools.cache
def world_fact_templates(edits: int = 3000) -> frozenset[str]:
    """Templates of every fact the synthetic editor states, from `edits` seeded edits (cached)."""
    from ie_eval.data.pretrain.tasks import TRAIN_STREAM, TaskMix, make_sample

    mix = TaskMix(image_size=32)
    texts = [
        fact.text
        for index in range(edits)
        for fact in make_sample(1, TRAIN_STREAM + 1000, index, mix, task="change").truth["facts"].values()
    ]
    return known_templates(texts)


def critique_claims(text: str) -> list[str]:
    """The claims of a critique: sentences of its observation sections (or of the whole text before
    its final assessment when it has no sections), normalized, without empty ones. A think_answer
    critique's claims are those of its `<think>` reasoning."""
    text = think_text(text) if "<think>" in text else text
    sections = parse_observations(text)
    body = " \n".join(sections.values()) if sections else re.split(re.escape(FINAL_ASSESSMENT), text, flags=re.I)[0]
    claims = [normalize_claim(part) for part in _SPLIT.split(body)]
    return [c for c in claims if c and c != NO_OBSERVATION]


@dataclass(frozen=True)
class FactualityCounts:
    true: int = 0
    false: int = 0
    unverifiable: int = 0

    def __add__(self, other: FactualityCounts) -> FactualityCounts:
        return FactualityCounts(self.true + other.true, self.false + other.false, self.unverifiable + other.unverifiable)

    @property
    def factuality(self) -> float:
        """true / (true + false); NaN when no claim could be checked."""
        checked = self.true + self.false
        return self.true / checked if checked else float("nan")

    @property
    def unverifiable_share(self) -> float:
        total = self.true + self.false + self.unverifiable
        return self.unverifiable / total if total else float("nan")


def fact_fields(facts: Mapping[str, object]) -> dict[str, tuple[str, bool]]:
    """{key: (text, ok)} from `Fact`s or their JSON form ({"text", "ok"})."""
    out = {}
    for key, fact in facts.items():
        if isinstance(fact, Mapping):
            out[key] = (str(fact["text"]), bool(fact["ok"]))
        else:
            out[key] = (str(fact.text), bool(fact.ok))
    return out


def check_claims(claims: Sequence[str], facts: Mapping[str, object], templates: frozenset[str]) -> FactualityCounts:
    """Count true / false / unverifiable claims against one edited image's facts."""
    fields = fact_fields(facts)
    stated = {normalize_claim(text) for text, _ in fields.values()}
    vague = {normalize_claim(text): (key, ok) for (key, ok), text in VAGUE_TEXT.items()}
    true = false = unverifiable = 0
    for claim in claims:
        if claim in vague:
            key, ok = vague[claim]
            agrees = key in fields and fields[key][1] == ok
            true, false = true + agrees, false + (not agrees)
        elif claim in stated:
            true += 1
        elif claim_template(claim) in templates:
            false += 1
        else:
            unverifiable += 1
    return FactualityCounts(true, false, unverifiable)


def critique_factuality(text: str, facts: Mapping[str, object], templates: frozenset[str]) -> FactualityCounts:
    return check_claims(critique_claims(text), facts, templates)


class Factuality(Metric):
    """Claim counts over generated critiques: `compute()` -> factuality and the unverifiable share."""

    full_state_update = False

    def __init__(self, templates: frozenset[str] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.templates = templates
        for name in ("true", "false", "unverifiable"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, texts: Sequence[str], facts: Sequence[Mapping[str, object] | None]) -> None:
        """Critiques and their edited images' facts; rows without facts are skipped."""
        templates = self.templates if self.templates is not None else world_fact_templates()
        for text, row_facts in zip(texts, facts, strict=True):
            if row_facts:
                counts = critique_factuality(text, row_facts, templates)
                # Not in place: states reset under `trainer.validate`'s inference mode are inference
                # tensors, which a later validation inside `fit` may not modify in place.
                self.true = self.true + counts.true
                self.false = self.false + counts.false
                self.unverifiable = self.unverifiable + counts.unverifiable

    def compute(self) -> dict[str, torch.Tensor]:
        checked, total = self.true + self.false, self.true + self.false + self.unverifiable
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        return {
            "factuality": self.true / checked if checked > 0 else nan,
            "unverifiable_claims": self.unverifiable / total if total > 0 else nan,
        }
