"""ReasonEdit-22K layouts: CoT-12K (critique + MOS) and Reward-113K (critique + human scores).

CoT table: one row per CoT with the EBench triplet columns, the CoT text and optionally
the three MOS columns. Reward table: one row per critique with logicality / accuracy /
usefulness; raw per-annotator judgments can come either as a `ratings` JSON column
(``{dim: {annotator: rating}}``) or in long format (``annotator_column`` set: one row
per (critique, annotator), the dimension columns holding that annotator's ratings), in
which case `critique_scores` is the per-dimension mean of the raw ratings until
`normalize_records` replaces it. Critique ids default to a hash of the critique text.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ie_eval.data.adapters.ebench import EBENCH_COLUMNS, base_fields, mos_fields
from ie_eval.data.adapters.tables import (
    Columns,
    TableOptions,
    cell,
    finite,
    json_value,
    load_table,
    merge_columns,
    text_id,
)
from ie_eval.data.readers import ManifestReadResult, Row
from ie_eval.data.records import CRITIQUE_DIMS, RecordError, row_context

if TYPE_CHECKING:
    from typing_extensions import Unpack

COT_COLUMNS: Mapping[str, str | None] = {**EBENCH_COLUMNS, "critique": "cot", "critique_id": "cot_id"}
REWARD_COLUMNS: Mapping[str, str | None] = {
    **EBENCH_COLUMNS,
    "critique": "critique",
    "critique_id": "critique_id",  # optional; default: hash of the critique text
    "logicality": "logicality",
    "accuracy": "accuracy",
    "usefulness": "usefulness",
    "ratings": "ratings",  # optional JSON {dim: {annotator: rating}}
    "annotator": "annotator",  # read only in long format (annotator_column=True)
}
RATINGS_KEY = "__ratings__"  # merged long-format ratings travel in the row under this key


def _critique_fields(row: Row, columns: Mapping[str, str | None], context: str, dataset: str) -> dict:
    """Triplet fields + critique text/id + optional MOS, shared by both layouts."""
    fields = base_fields(row, columns, context)
    critique = cell(row, columns, "critique", context, required=False)
    if critique is None or not str(critique).strip():
        raise RecordError(f"{context}: field 'critique' is empty (column '{columns['critique']}')")
    critique_id = cell(row, columns, "critique_id", context, required=False)
    fields.update(critique=str(critique), critique_id=text_id(str(critique)) if critique_id is None else critique_id)
    fields["mos"] = mos_fields(row, columns, context, required=False)
    fields["meta"]["dataset"] = dataset
    return fields


def _ratings_column(row: Row, columns: Mapping[str, str | None], context: str) -> object:
    """Raw ratings: merged long-format ones, else the (possibly JSON-encoded) ratings column."""
    if RATINGS_KEY in row:
        return row[RATINGS_KEY]
    return json_value(cell(row, columns, "ratings", context, required=False), "ratings", context)


def _mean_scores(ratings: object, context: str) -> list[float]:
    """Per-dimension mean of ``{dim: {annotator: rating}}`` for the three critique dims."""
    if not isinstance(ratings, Mapping):
        raise RecordError(f"{context}: field 'ratings' must be a {{dim: {{annotator: rating}}}} map")
    means = []
    for dim in CRITIQUE_DIMS:
        values = [finite(v, f"ratings.{dim}.{a}", context) for a, v in (ratings.get(dim) or {}).items()
                  if v is not None]
        if not values:
            raise RecordError(f"{context}: missing required field '{dim}' (no scores and no raw ratings)")
        means.append(sum(values) / len(values))
    return means


def _annotator_row(row: Row, columns: Mapping[str, str | None], context: str) -> tuple[tuple[str, str], str, dict]:
    """(pair_id, critique_id), annotator and that annotator's three ratings of one long-format row."""
    fields = _critique_fields(row, columns, context, "reasonedit_reward")
    annotator = str(cell(row, columns, "annotator", context))
    scores = {dim: finite(cell(row, columns, dim, context), dim, context) for dim in CRITIQUE_DIMS}
    return (str(fields["pair_id"]), str(fields["critique_id"])), annotator, scores


def group_annotator_rows(
    rows: Iterator[tuple[int, Row | RecordError]], columns: Mapping[str, str | None], path: Path
) -> Iterator[tuple[int, Row | RecordError]]:
    """Merge one-row-per-annotator rows into one row per critique, at its first row number.

    A bad annotator row (or an annotator rating one critique twice) becomes a bad row of its own.
    """
    groups: dict[object, tuple[int, Row | RecordError]] = {}
    for row_number, row in rows:
        context = row_context(path, row_number)
        try:
            if isinstance(row, RecordError):
                raise row
            key, annotator, scores = _annotator_row(row, columns, context)
            first_number, merged = groups.setdefault(key, (row_number, {**row, RATINGS_KEY: {}}))
            ratings = merged[RATINGS_KEY]
            if annotator in ratings.get(CRITIQUE_DIMS[0], {}):
                raise RecordError(f"{context}: field 'annotator': '{annotator}' already rated this critique "
                                  f"at {row_context(path, first_number)}")
            for dim, score in scores.items():
                ratings.setdefault(dim, {})[annotator] = score
        except RecordError as error:
            groups[("bad row", row_number)] = (row_number, error)
    yield from groups.values()


def load_reasonedit_cot(
    path: str | Path, *, columns: Columns = None, **options: Unpack[TableOptions]
) -> ManifestReadResult:
    """Records with a CoT `critique` (and `mos` when present) from a ReasonEdit-CoT table."""
    mapping = merge_columns(COT_COLUMNS, columns, "reasonedit_cot")
    return load_table(path, lambda row, context: [_critique_fields(row, mapping, context, "reasonedit_cot")], **options)


def load_reasonedit_reward(
    path: str | Path,
    *,
    columns: Columns = None,
    annotator_column: bool = False,
    **options: Unpack[TableOptions],
) -> ManifestReadResult:
    """Records with `critique`, `critique_scores` and optional raw `ratings` from a ReasonEdit-Reward table."""
    mapping = merge_columns(REWARD_COLUMNS, columns, "reasonedit_reward")

    def mapper(row: Row, context: str) -> list[dict]:
        fields = _critique_fields(row, mapping, context, "reasonedit_reward")
        ratings = _ratings_column(row, mapping, context)
        listed = [cell(row, mapping, dim, context, required=False) for dim in CRITIQUE_DIMS]
        if annotator_column or (ratings is not None and all(v is None for v in listed)):
            fields["critique_scores"] = _mean_scores(ratings, context)
        else:
            fields["critique_scores"] = [finite(cell(row, mapping, d, context), d, context) for d in CRITIQUE_DIMS]
        fields["ratings"] = ratings
        return [fields]

    def regroup(rows):
        return group_annotator_rows(rows, mapping, Path(path))

    return load_table(path, mapper, regroup=regroup if annotator_column else None, **options)
