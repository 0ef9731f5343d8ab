"""EBench-18K-style MOS tables: one row per edited image with three MOS columns.

Expected layout (column names are configurable, see docs/data.md): source image name,
edited image name, instruction, and one MOS column each for visual quality, instruction
alignment and content preservation; optionally ids, task type and editing model.
Ids default to the image paths without extension, so every edit of one source shares
`source_id` and the split stays source-disjoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ie_eval.data.adapters.tables import (
    Columns,
    TableOptions,
    cell,
    finite,
    load_table,
    merge_columns,
    path_id,
)
from ie_eval.data.readers import ManifestReadResult, Row
from ie_eval.data.records import MOS_DIMS

if TYPE_CHECKING:
    from typing_extensions import Unpack

EBENCH_COLUMNS: Mapping[str, str | None] = {
    "pair_id": "pair_id",  # optional; default: edited image path without extension
    "source_id": "source_id",  # optional; default: source image path without extension
    "source_image": "source_image",
    "edited_image": "edited_image",
    "instruction": "instruction",
    "visual_quality": "quality_mos",
    "instruction_alignment": "alignment_mos",
    "content_preservation": "preservation_mos",
    "task_type": "task",  # optional
    "model": "model",  # optional, kept in meta
}


def base_fields(row: Row, columns: Mapping[str, str | None], context: str) -> dict:
    """pair_id / source_id / images / instruction / task_type / meta.model of a triplet row."""
    source_image = cell(row, columns, "source_image", context)
    edited_image = cell(row, columns, "edited_image", context)
    pair_id = cell(row, columns, "pair_id", context, required=False)
    source_id = cell(row, columns, "source_id", context, required=False)
    model = cell(row, columns, "model", context, required=False)
    return {
        "pair_id": path_id(edited_image) if pair_id is None else pair_id,
        "source_id": path_id(source_image) if source_id is None else source_id,
        "source_image": str(source_image),
        "edited_image": str(edited_image),
        "instruction": cell(row, columns, "instruction", context),
        "task_type": cell(row, columns, "task_type", context, required=False),
        "meta": {} if model is None else {"model": str(model)},
    }


def mos_fields(row: Row, columns: Mapping[str, str | None], context: str, required: bool = True) -> list | None:
    """The three MOS columns as a list in MOS_DIMS order (None if all absent and not required)."""
    values = [cell(row, columns, dim, context, required=False) for dim in MOS_DIMS]
    if not required and all(value is None for value in values):
        return None
    return [finite(cell(row, columns, dim, context), dim, context) for dim in MOS_DIMS]


def _ebench_row(columns: Mapping[str, str | None], row: Row, context: str) -> list[dict]:
    fields = base_fields(row, columns, context)
    fields["mos"] = mos_fields(row, columns, context)
    fields["meta"]["dataset"] = "ebench"
    return [fields]


def load_ebench(path: str | Path, *, columns: Columns = None, **options: Unpack[TableOptions]) -> ManifestReadResult:
    """Records (with `mos`) from an EBench-18K-style MOS table."""
    return load_table(path, partial(_ebench_row, merge_columns(EBENCH_COLUMNS, columns, "ebench")), **options)
