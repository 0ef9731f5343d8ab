"""Pairwise preference sets (GenAI-Bench editing, AURORA-Bench): A vs B with a label, ties allowed.

Expected layout: one row per comparison with the source image, instruction, the two edited
images and a label saying which is better (A / B / tie; GenAI-Bench-style vote names
such as ``leftvote`` / ``rightvote`` / ``tievote`` / ``bothbad_vote`` are understood, and
`label_map` can add others). Each row becomes two candidate records with preference meta
(see `preference.py`); a tie gives both rank 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ie_eval.data.adapters.preference import preference_meta
from ie_eval.data.adapters.tables import (
    PREFERENCE_COLUMNS,
    Columns,
    TableOptions,
    cell,
    group_fields,
    load_table,
    merge_columns,
    with_row_numbers,
)
from ie_eval.data.readers import ManifestReadResult, Row
from ie_eval.data.records import RecordError

if TYPE_CHECKING:
    from typing_extensions import Unpack

PAIRWISE_COLUMNS: Mapping[str, str | None] = {
    **PREFERENCE_COLUMNS,
    "group_id": "id",  # the public pairwise layouts call it "id"
    "edited_a": "edited_a",
    "edited_b": "edited_b",
    "label": "label",
    "model_a": "model_a",  # optional, kept in meta
    "model_b": "model_b",  # optional, kept in meta
}
# Label (lower-cased) -> winner: "A", "B" or "tie".
PAIRWISE_LABELS: Mapping[str, str] = {
    "a": "A", "left": "A", "leftvote": "A",
    "b": "B", "right": "B", "rightvote": "B",
    "tie": "tie", "tievote": "tie", "both_good": "tie", "both_bad": "tie", "bothbad_vote": "tie",
    "bothgood_vote": "tie",
}


# EditReward-Data's training JSON (TIGER-AI-Lab/EditReward, TRAIN_README.md): path1 is always the
# preferred edit, so there is no label column (`default_label="A"`).
EDITREWARD_DATA_COLUMNS: Mapping[str, str | None] = {
    "group_id": "id",
    "source_image": "path_src",
    "instruction": "prompt",
    "edited_a": "path1",
    "edited_b": "path2",
    "label": "label",
    "model_a": "model1",
    "model_b": "model2",
}


def _winner(label: object, labels: Mapping[str, str], context: str) -> str:
    winner = labels.get(str(label).strip().lower())
    if winner not in ("A", "B", "tie"):
        raise RecordError(f"{context}: field 'label': unknown preference label {label!r}; known: {sorted(labels)}")
    return winner


def load_pairwise(
    path: str | Path, *, dataset: str = "pairwise", columns: Columns = None,
    label_map: Mapping[str, str] | None = None, default_label: str | None = None, **options: Unpack[TableOptions],
) -> ManifestReadResult:
    """Two candidate records per comparison row, ranked by the label.

    default_label: the label of a row without one (EditReward-Data's training layout puts the
    preferred edit first and has no label column: "A").
    """
    mapping = merge_columns(PAIRWISE_COLUMNS, columns, dataset)
    labels = {**PAIRWISE_LABELS, **{str(k).lower(): v for k, v in (label_map or {}).items()}}

    def mapper(row: Row, context: str) -> list[dict]:
        group_id, shared = group_fields(row, mapping, context, dataset)
        label = cell(row, mapping, "label", context, required=default_label is None)
        label = default_label if label is None else label
        winner = _winner(label, labels, context)
        ranks = {"A": (1, 2), "B": (2, 1), "tie": (1, 1)}[winner]
        out = []
        for side, rank in zip("AB", ranks, strict=True):
            model = cell(row, mapping, f"model_{side.lower()}", context, required=False)
            extra = {"dataset": dataset, "label": str(label), **({"model": str(model)} if model is not None else {})}
            out.append({
                **shared,
                "pair_id": f"{group_id}/{side}",
                "edited_image": str(cell(row, mapping, f"edited_{side.lower()}", context)),
                "meta": preference_meta(group_id, rank, 2, side, **extra),
            })
        return out

    return load_table(path, mapper, regroup=with_row_numbers, **options)
