"""The one typed record every reader, adapter, sampler and collator speaks.

A record is one (source image, edited image, instruction) triplet, optionally with one
candidate critique. A pair with several critiques is several records sharing `pair_id`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

# Scores the critic predicts for an edit (MOS), in this order everywhere.
MOS_DIMS: tuple[str, str, str] = ("visual_quality", "instruction_alignment", "content_preservation")
# Scores RE-Reward predicts for a critique, in this order everywhere.
CRITIQUE_DIMS: tuple[str, str, str] = ("logicality", "accuracy", "usefulness")
ALL_DIMS: tuple[str, ...] = MOS_DIMS + CRITIQUE_DIMS
# The one-score view of an edit (`overall_mos`): what a single-score critic (think_answer) predicts.
OVERALL_DIMS: tuple[str] = ("overall",)


class RecordError(ValueError):
    """A manifest row that cannot become a record; the message names file and row."""


def row_context(path: str | Path | None, row: int | None) -> str:
    """`file:row` prefix used by every data error message (row is 1-based data row)."""
    where = str(path) if path is not None else "<memory>"
    return f"{where}:{row}" if row is not None else where


@dataclass(frozen=True)
class EditRecord:
    """One triplet, with whatever supervision the source dataset has.

    Attributes:
        pair_id: identifies the (source, edited) pair; unique together with `critique_id`.
        source_id: identifies the source image; splits and the sampler group by it.
        source_image / edited_image: absolute paths after reading a manifest.
        instruction: the edit instruction, non-empty.
        mos: (visual_quality, instruction_alignment, content_preservation) targets.
        critique: a candidate critique text (RE-Reward input, or SFT target).
        critique_id: distinguishes critiques of one pair.
        critique_scores: (logicality, accuracy, usefulness) targets of the critique.
        ratings: raw annotator ratings, ``{dim: {annotator_id: rating}}`` with dim in ALL_DIMS.
        task_type: taxonomy label such as "add", "color", "deblur".
        meta: free-form extras an adapter wants to keep (never used for training).
    """

    pair_id: str
    source_id: str
    source_image: Path
    edited_image: Path
    instruction: str
    mos: tuple[float, float, float] | None = None
    critique: str | None = None
    critique_id: str | None = None
    critique_scores: tuple[float, float, float] | None = None
    ratings: Mapping[str, Mapping[str, float]] | None = None
    task_type: str | None = None
    meta: Mapping[str, object] = field(default_factory=dict)

    @property
    def sample_id(self) -> str:
        """Unique key of the record: pair, plus critique when there is one."""
        return self.pair_id if self.critique_id is None else f"{self.pair_id}#{self.critique_id}"

    @property
    def has_mos(self) -> bool:
        return self.mos is not None

    @property
    def has_critique(self) -> bool:
        return self.critique is not None


def single_mos(record: EditRecord) -> float | None:
    """An adapter's one overall MOS (`meta["mos_overall"]`: IE-Bench, IE-Critic-R1's `answer`), or None."""
    overall = record.meta.get("mos_overall") if isinstance(record.meta, Mapping) else None
    return float(overall) if isinstance(overall, (int, float)) and math.isfinite(overall) else None


def overall_mos(record: EditRecord) -> float | None:
    """The edit's one overall truth: its single MOS, else the mean of the three `mos`; on the
    manifest's scale either way. None when the record has neither."""
    single = single_mos(record)
    if single is not None:
        return single
    return None if record.mos is None else float(sum(record.mos) / len(record.mos))


def without_mos(record: EditRecord) -> EditRecord:
    """The record as a pure source-edit pair: neither its three MOS nor a single overall one."""
    meta = {k: v for k, v in record.meta.items() if k != "mos_overall"} if isinstance(record.meta, Mapping) else {}
    return replace(record, mos=None, meta=meta)


def as_score_triplet(value: object, field_name: str, context: str) -> tuple[float, float, float] | None:
    """Coerce a 3-vector of finite floats, or None; raise RecordError naming the field otherwise."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise RecordError(f"{context}: field '{field_name}' must be a list of 3 numbers, got {value!r}")
    if len(value) != 3:
        raise RecordError(f"{context}: field '{field_name}' must have 3 values, got {len(value)}")
    out = []
    for dim_index, item in enumerate(value):
        try:
            number = float(item)
        except (TypeError, ValueError):
            raise RecordError(f"{context}: field '{field_name}[{dim_index}]' is not a number: {item!r}") from None
        if not math.isfinite(number):
            raise RecordError(f"{context}: field '{field_name}[{dim_index}]' is not finite: {item!r}")
        out.append(number)
    return (out[0], out[1], out[2])
