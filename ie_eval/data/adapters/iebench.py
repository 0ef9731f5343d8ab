"""IE-Bench-4k: source, edited, instruction and one overall MOS per edit.

The overall MOS has no slot in our three-dimensional `mos`, so it is kept as
``meta["mos_overall"]`` (evaluate it against the mean of the three predicted scores, as the
paper does for ImagenHub); `mos` is filled only when the table also has the three
sub-scores (perceptual quality, text alignment, fidelity).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ie_eval.data.adapters.ebench import base_fields, mos_fields
from ie_eval.data.adapters.tables import cell, finite, load_table, merge_columns
from ie_eval.data.readers import ManifestReadResult, Row

IEBENCH_COLUMNS: Mapping[str, str | None] = {
    "pair_id": "pair_id",  # optional; default: edited image path without extension
    "source_id": "source_id",  # optional; default: source image path without extension
    "source_image": "source_image",
    "edited_image": "edited_image",
    "instruction": "instruction",
    "mos_overall": "mos",
    "visual_quality": "perceptual_quality",  # optional (all three or none)
    "instruction_alignment": "text_alignment",
    "content_preservation": "fidelity",
    "task_type": "task",  # optional
    "model": "model",  # optional, kept in meta
}


def load_iebench(
    path: str | Path,
    *,
    columns: Mapping[str, str | None] | None = None,
    image_root: str | Path | None = None,
    strict: bool = True,
    check_images: bool = True,
    sheet: str | int | None = None,
) -> ManifestReadResult:
    """Records with ``meta["mos_overall"]`` (and `mos` when sub-scores exist) from an IE-Bench table."""
    mapping = merge_columns(IEBENCH_COLUMNS, columns, "iebench")

    def mapper(row: Row, context: str) -> list[dict]:
        fields = base_fields(row, mapping, context)
        overall = finite(cell(row, mapping, "mos_overall", context), "mos_overall", context)
        fields["mos"] = mos_fields(row, mapping, context, required=False)
        fields["meta"].update(dataset="iebench", mos_overall=overall)
        return [fields]

    return load_table(path, mapper, image_root=image_root, strict=strict, check_images=check_images, sheet=sheet)
