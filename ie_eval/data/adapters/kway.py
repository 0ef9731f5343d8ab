"""K-way preference sets (EditReward-Bench, K = 2, 3, 4): candidates of one edit ranked by humans.

Expected layout: one row per group with the source image, instruction, a list of edited
images and a list of ranks (1 = best, equal = tie) or, instead, a list of scores (higher
is better; converted to competition ranks). List cells may be JSON strings (CSV). Each
candidate becomes one record with preference meta (see `preference.py`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ie_eval.data.adapters.preference import competition_ranks, preference_meta
from ie_eval.data.adapters.tables import (
    PREFERENCE_COLUMNS,
    Columns,
    TableOptions,
    cell,
    finite,
    group_fields,
    json_list,
    load_table,
    merge_columns,
    with_row_numbers,
)
from ie_eval.data.readers import ManifestReadResult, Row
from ie_eval.data.records import RecordError

if TYPE_CHECKING:
    from typing_extensions import Unpack

KWAY_COLUMNS: Mapping[str, str | None] = {
    **PREFERENCE_COLUMNS,
    "edited_images": "edited_images",
    "ranks": "ranks",  # either ranks ...
    "scores": "scores",  # ... or scores (higher is better)
    "models": "models",  # optional list, kept in meta
}


def _ranks(row: Row, columns: Mapping[str, str | None], k: int, context: str) -> list[int]:
    """Ranks from the ranks column, else from the scores column; length and values checked."""
    listed = cell(row, columns, "ranks", context, required=False)
    if listed is None:
        scores = json_list(cell(row, columns, "scores", context), "scores", context)
        ranks = competition_ranks([finite(s, "scores", context) for s in scores])
    else:
        raw = [finite(r, "ranks", context) for r in json_list(listed, "ranks", context)]
        if any(r < 1 or r != int(r) for r in raw):
            raise RecordError(f"{context}: field 'ranks' must hold integers >= 1, got {raw}")
        ranks = [int(r) for r in raw]
    if len(ranks) != k:
        raise RecordError(f"{context}: field 'ranks' has {len(ranks)} values for {k} edited images")
    return ranks


def load_kway(
    path: str | Path, *, dataset: str = "editreward_bench", columns: Columns = None,
    group_sizes: Collection[int] | None = None, **options: Unpack[TableOptions],
) -> ManifestReadResult:
    """K candidate records per group row; `group_sizes` (e.g. {2, 3, 4}) restricts K."""
    mapping = merge_columns(KWAY_COLUMNS, columns, dataset)

    def mapper(row: Row, context: str) -> list[dict]:
        edited = json_list(cell(row, mapping, "edited_images", context), "edited_images", context)
        if len(edited) < 2 or (group_sizes is not None and len(edited) not in group_sizes):
            allowed = sorted(group_sizes) if group_sizes is not None else ">= 2"
            raise RecordError(f"{context}: field 'edited_images' has {len(edited)} candidates; allowed K: {allowed}")
        ranks = _ranks(row, mapping, len(edited), context)
        models_cell = cell(row, mapping, "models", context, required=False)
        models = json_list(models_cell, "models", context) if models_cell is not None else [None] * len(edited)
        if len(models) != len(edited):
            raise RecordError(f"{context}: field 'models' has {len(models)} values for {len(edited)} edited images")
        group_id, shared = group_fields(row, mapping, context, dataset)
        out = []
        for index, (image, rank, model) in enumerate(zip(edited, ranks, models, strict=True)):
            extra = {"dataset": dataset, **({"model": str(model)} if model is not None else {})}
            out.append({
                **shared,
                "pair_id": f"{group_id}/{index}",
                "edited_image": str(image),
                "meta": preference_meta(group_id, rank, len(edited), str(index), **extra),
            })
        return out

    return load_table(path, mapper, regroup=with_row_numbers, **options)
