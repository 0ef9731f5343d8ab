"""The generated items before they are written: one `PairDraft` per edited pair, with its critiques."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ie_eval.data.synth.critiques import Critique
from ie_eval.data.synth.facts import Fact


@dataclass(frozen=True)
class CritiqueDraft:
    """A critique attached to one pair: its accuracy truth depends on that pair's edited image."""

    critique_id: str
    critique: Critique
    accuracy: float
    ratings: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def truth(self) -> tuple[float, float, float]:
        """(logicality, accuracy, usefulness) by construction."""
        return (self.critique.logicality, self.accuracy, self.critique.usefulness)


@dataclass(frozen=True)
class PairDraft:
    """One edited pair with its truth, raw MOS ratings and the critiques attached to it.

    `describes` of a critique indexes `group_pair_ids`, the two pairs of the instruction.
    """

    pair_id: str
    source_id: str
    group_id: str
    group_pair_ids: tuple[str, str]
    source_image: str
    edited_image: str
    instruction: str
    task_type: str
    failure_mode: str
    truth_mos: tuple[float, float, float]
    facts: Mapping[str, Fact]
    details: Mapping[str, object]
    critiques: tuple[CritiqueDraft, ...]
    mos_ratings: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def twin_pair_id(self) -> str:
        first, second = self.group_pair_ids
        return second if self.pair_id == first else first
