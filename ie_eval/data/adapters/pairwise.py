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

from ie_eval.data.adapters.preference import preference_meta
from ie_eval.data.adapters.tables import (
    ROW_NUMBER_KEY,
    cell,
    load_table,
    merge_columns,
    path_id,
    with_row_numbers,
)
from ie_eval.data.readers import ManifestReadResult, Row
from ie_eval.data.records import RecordError

PAIRWISE_COLUMNS: Mapping[str, str | None] = {
    "group_id": "id",  # optional; default: "<dataset>:<row>"
    "source_id": "source_id",  # optional; default: source image path without extension
    "source_image": "source_image",
    "instruction": "instruction",
    "edited_a": "edited_a",
    "edited_b": "edited_b",
    "label": "label",
    "model_a": "model_a",  # optional, kept in meta
    "model_b": "model_b",  # optional, kept in meta
    "task_type": "task",  # optional
}
# Label (lower-cased) -> winner: "A", "B" or "tie".
PAIRWISE_LABELS: Mapping[str, str] = {
    "a": "A", "left": "A", "leftvote": "A",
    "b": "B", "right": "B", "rightvote": "B",
    "tie": "tie", "tievote": "tie", "both_good": "tie", "both_bad": "tie", "bothbad_vote": "tie",
    "bothgood_vote": "tie",
}


def _winner(label: object, labels: Mapping[str, str], context: str) -> str:
    winner = labels.get(str(label).strip().lower())
    if winner not in ("A", "B", "tie"):
        raise RecordError(f"{context}: field 'label': unknown preference label {label!r}; known: {sorted(labels)}")
    return winner


def load_pairwise(
    path: str | Path,
    *,
    dataset: str = "pairwise",
    columns: Mapping[str, str | None] | None = None,
    label_map: Mapping[str, str] | None = None,
    image_root: str | Path | None = None,
    strict: bool = True,
    check_images: bool = True,
    sheet: str | int | None = None,
) -> ManifestReadResult:
    """Two candidate records per comparison row, ranked by the label."""
    mapping = merge_columns(PAIRWISE_COLUMNS, columns, dataset)
    labels = {**PAIRWISE_LABELS, **{str(k).lower(): v for k, v in (label_map or {}).items()}}

    def mapper(row: Row, context: str) -> list[dict]:
        source_image = cell(row, mapping, "source_image", context)
        source_id = cell(row, mapping, "source_id", context, required=False)
        group_id = cell(row, mapping, "group_id", context, required=False)
        group_id = f"{dataset}:{row[ROW_NUMBER_KEY]}" if group_id is None else str(group_id)
        label = cell(row, mapping, "label", context)
        winner = _winner(label, labels, context)
        ranks = {"A": (1, 2), "B": (2, 1), "tie": (1, 1)}[winner]
        shared = {
            "source_id": path_id(source_image) if source_id is None else source_id,
            "source_image": str(source_image),
            "instruction": cell(row, mapping, "instruction", context),
            "task_type": cell(row, mapping, "task_type", context, required=False),
        }
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

    return load_table(path, mapper, image_root=image_root, strict=strict, check_images=check_images,
                      sheet=sheet, regroup=with_row_numbers)
