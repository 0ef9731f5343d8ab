"""What every adapter shares: reading a table, mapping its columns, and running the pipeline.

An adapter is a `RowMapper` (one source row -> manifest-field dicts) plus a column map
with documented defaults the user can override; `load_table` runs it through
`readers.build_records`, so adapters inherit the manifest's bad-row policy.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, TypedDict

from ie_eval.data.readers import (
    ManifestReadResult,
    Row,
    RowMapper,
    build_records,
    decode_json,
    finite_number,
    iter_delimited,
    iter_rows,
)
from ie_eval.data.records import RecordError

if TYPE_CHECKING:
    from typing_extensions import Unpack

finite = finite_number  # adapters' short name
json_value = decode_json

Columns = Mapping[str, str | None] | None  # an adapter's column overrides (None: its documented defaults)
# The columns every preference row shares (kway and pairwise layouts extend them).
PREFERENCE_COLUMNS: Mapping[str, str | None] = {
    "group_id": "group_id",  # optional; default: "<dataset>:<row>"
    "source_id": "source_id",  # optional; default: source image path without extension
    "source_image": "source_image",
    "instruction": "instruction",
    "task_type": "task",  # optional
}
TABLE_SUFFIXES: tuple[str, ...] = (".jsonl", ".csv", ".parquet", ".tsv", ".json", ".xlsx", ".xls")


def read_table(path: Path, sheet: str | int | None = None) -> Iterator[tuple[int, Row | RecordError]]:
    """(1-based data row, row) pairs of a .jsonl/.csv/.parquet/.tsv/.json/.xlsx table."""
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        return iter_delimited(path, "\t")
    if suffix == ".json":
        return _iter_json_array(path)
    if suffix in (".xlsx", ".xls"):
        return _iter_excel(path, sheet)
    if suffix in (".jsonl", ".csv", ".parquet"):
        return iter_rows(path)
    raise RecordError(f"{path}: unsupported table format '{suffix}'; use one of {TABLE_SUFFIXES}")


def _iter_json_array(path: Path) -> Iterator[tuple[int, Row | RecordError]]:
    """Rows of a JSON file holding one array of objects; the row is the 1-based array index."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RecordError(f"{path}: invalid JSON: {error}") from None
    if not isinstance(data, list):
        raise RecordError(f"{path}: expected a JSON array of row objects, got {type(data).__name__}")
    for row_number, row in enumerate(data, start=1):
        if isinstance(row, dict):
            yield row_number, row
        else:
            yield row_number, RecordError(f"{path}:{row_number}: a row must be a JSON object")


def _iter_excel(path: Path, sheet: str | int | None) -> Iterator[tuple[int, Row | RecordError]]:
    """Rows of a spreadsheet via pandas (needs openpyxl); empty cells become None."""
    import pandas as pd

    try:
        frame = pd.read_excel(path, sheet_name=0 if sheet is None else sheet, dtype=object)
    except ImportError as error:
        raise RecordError(f"{path}: reading spreadsheets needs openpyxl ({error}); or export it to CSV") from None
    for row_number, row in enumerate(frame.to_dict(orient="records"), start=1):
        yield row_number, {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def merge_columns(defaults: Mapping[str, str | None], overrides: Mapping[str, str | None] | None,
                  adapter: str) -> dict[str, str | None]:
    """Default column map updated by the user's; an unknown key is a ValueError (likely a typo)."""
    merged = dict(defaults)
    for key, column in (overrides or {}).items():
        if key not in defaults:
            raise ValueError(f"{adapter}: unknown column key '{key}'; known keys: {sorted(defaults)}")
        merged[key] = column
    return merged


def cell(row: Row, columns: Mapping[str, str | None], key: str, context: str, required: bool = True):
    """The row's value for our field `key` (through the column map); None if absent and optional."""
    column = columns.get(key)
    value = row.get(column) if column is not None else None
    if value is None or (isinstance(value, str) and value == ""):
        if required:
            raise RecordError(f"{context}: missing required field '{key}' (column '{column}')")
        return None
    return value


def json_list(value: object, key: str, context: str) -> list:
    """A list cell, or a JSON-encoded one (CSV)."""
    value = decode_json(value, key, context)
    if not isinstance(value, (list, tuple)):
        raise RecordError(f"{context}: field '{key}' must be a list, got {value!r}")
    return list(value)


def path_id(image: object) -> str:
    """An id from an image entry: its path without extension ('model_a/0001.png' -> 'model_a/0001')."""
    path = PurePosixPath(str(image).replace("\\", "/"))
    return str(path.with_suffix("")) if path.suffix else str(path)


def text_id(text: str) -> str:
    """A short stable id of a text (critique ids when the dataset has none)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


class TableOptions(TypedDict, total=False):
    """How every adapter reads its table (each adapter's ``**options``).

    image_root: folder the image paths resolve against (default: the table's folder).
    strict: raise on the first bad row (default) or skip and count bad rows.
    check_images: check that every image file exists (default True).
    sheet: the Excel sheet to read (default: the first).
    """

    image_root: str | Path | None
    strict: bool
    check_images: bool
    sheet: str | int | None


Regroup = Callable[[Iterator[tuple[int, Row | RecordError]]], Iterator[tuple[int, Row | RecordError]]]


def load_table(
    path: str | Path, mapper: RowMapper, *, regroup: Regroup | None = None, **options: Unpack[TableOptions]
) -> ManifestReadResult:
    """Run an adapter's row mapper over a table; images resolve against `image_root` or its folder.

    `regroup` may merge source rows first (long-format annotations: many rows, one record).
    """
    unknown = set(options) - set(TableOptions.__annotations__)
    if unknown:
        raise TypeError(f"unknown table option(s) {sorted(unknown)}; known: {sorted(TableOptions.__annotations__)}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dataset table not found")
    rows = read_table(path, options.get("sheet"))
    if regroup is not None:
        rows = regroup(rows)
    image_root = options.get("image_root")
    base_dir = (Path(image_root) if image_root is not None else path.parent).absolute()
    return build_records(
        rows, path=path, base_dir=base_dir, mapper=mapper,
        strict=options.get("strict", True), check_images=options.get("check_images", True),
    )


ROW_NUMBER_KEY = "__row__"  # set by `with_row_numbers` for adapters that derive ids from the row


def group_fields(row: Row, columns: Mapping[str, str | None], context: str, dataset: str) -> tuple[str, dict]:
    """A preference row's group id (default "<dataset>:<row>") and the fields its candidates share."""
    source_image = cell(row, columns, "source_image", context)
    source_id = cell(row, columns, "source_id", context, required=False)
    group_id = cell(row, columns, "group_id", context, required=False)
    shared = {
        "source_id": path_id(source_image) if source_id is None else source_id,
        "source_image": str(source_image),
        "instruction": cell(row, columns, "instruction", context),
        "task_type": cell(row, columns, "task_type", context, required=False),
    }
    return (f"{dataset}:{row[ROW_NUMBER_KEY]}" if group_id is None else str(group_id)), shared


def with_row_numbers(rows: Iterator[tuple[int, Row | RecordError]]) -> Iterator[tuple[int, Row | RecordError]]:
    """The rows, each carrying its own 1-based data row under ROW_NUMBER_KEY."""
    for row_number, row in rows:
        yield row_number, row if isinstance(row, RecordError) else {**row, ROW_NUMBER_KEY: row_number}
