"""IE-Bench-4k: source, edited, instruction and one overall MOS per edit.

The overall MOS has no slot in our three-dimensional `mos`, so it is kept as
``meta["mos_overall"]`` (evaluate it against the mean of the three predicted scores, as the
paper does for ImagenHub); `mos` is filled only when the table also has the three
sub-scores (perceptual quality, text alignment, fidelity).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ie_eval.data.adapters.ebench import EBENCH_COLUMNS, base_fields, mos_fields
from ie_eval.data.adapters.tables import Columns, TableOptions, cell, finite, load_table, merge_columns
from ie_eval.data.readers import ManifestReadResult, Row

if TYPE_CHECKING:
    from typing_extensions import Unpack

IEBENCH_COLUMNS: Mapping[str, str | None] = {
    **EBENCH_COLUMNS,
    "mos_overall": "mos",
    "visual_quality": "perceptual_quality",  # optional (all three or none)
    "instruction_alignment": "text_alignment",
    "content_preservation": "fidelity",
}


def _iebench_row(columns: Mapping[str, str | None], row: Row, context: str) -> list[dict]:
    fields = base_fields(row, columns, context)
    overall = finite(cell(row, columns, "mos_overall", context), "mos_overall", context)
    fields["mos"] = mos_fields(row, columns, context, required=False)
    fields["meta"].update(dataset="iebench", mos_overall=overall)
    return [fields]


def load_iebench(path: str | Path, *, columns: Columns = None, **options: Unpack[TableOptions]) -> ManifestReadResult:
    """Records with ``meta["mos_overall"]`` (and `mos` when sub-scores exist) from an IE-Bench table."""
    return load_table(path, partial(_iebench_row, merge_columns(IEBENCH_COLUMNS, columns, "iebench")), **options)
