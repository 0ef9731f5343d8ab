"""Read manifests (JSONL / CSV / Parquet) into EditRecords (`ie_eval/data/writers.py` writes them back).

Every row goes through one pipeline (`build_records`) shared with the public-dataset
adapters, so the bad-row policy is the same everywhere: a row that cannot become a valid
record raises `RecordError` naming file, 1-based data row and field; with ``strict=False``
it is skipped, logged with a warning and counted in `ManifestReadResult.summary()`.
The format is documented in docs/data.md.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ie_eval.data.records import (
    ALL_DIMS,
    CRITIQUE_DIMS,
    MOS_DIMS,
    EditRecord,
    RecordError,
    as_score_triplet,
    row_context,
)
from ie_eval.progress import track

logger = logging.getLogger(__name__)

MANIFEST_SUFFIXES: tuple[str, ...] = (".jsonl", ".csv", ".parquet")
REQUIRED_FIELDS: tuple[str, ...] = ("pair_id", "source_id", "source_image", "edited_image", "instruction")
# Flat-column alternatives to the `mos` / `critique_scores` lists, in MOS_DIMS / CRITIQUE_DIMS order.
MOS_COLUMNS: tuple[str, ...] = tuple(f"mos_{dim}" for dim in MOS_DIMS)
CRITIQUE_COLUMNS: tuple[str, ...] = CRITIQUE_DIMS

# One source row: a mapping of column -> value, or the RecordError that made it unparsable.
Row = Mapping[str, object]
# Turns one source row into the manifest-field dicts of the records it yields (adapters).
RowMapper = Callable[[Row, str], list[dict]]


@dataclass(frozen=True)
class SkippedRow:
    """A row dropped under ``strict=False``: where it was and why."""

    path: str
    row: int | None
    reason: str


@dataclass
class ManifestReadResult:
    """Records read from one or more files, plus the rows that were skipped."""

    paths: list[Path] = field(default_factory=list)
    records: list[EditRecord] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)

    def summary(self, max_reasons: int = 10) -> str:
        """One line of counts, then up to `max_reasons` skipped rows with their reason."""
        files = ", ".join(str(p) for p in self.paths) or "<no files>"
        head = f"read {len(self.records)} records from {files}; skipped {len(self.skipped)} bad rows"
        lines = [head] + [f"  {item.reason}" for item in self.skipped[:max_reasons]]
        if len(self.skipped) > max_reasons:
            lines.append(f"  ... and {len(self.skipped) - max_reasons} more")
        return "\n".join(lines)


def iter_rows(path: Path) -> Iterator[tuple[int, Row | RecordError]]:
    """(1-based data row, row) pairs of a .jsonl / .csv / .parquet file."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _iter_jsonl(path)
    if suffix == ".csv":
        return iter_delimited(path, ",")
    if suffix == ".parquet":
        return _iter_parquet(path)
    raise RecordError(f"{path}: unsupported manifest format '{suffix}'; use one of {MANIFEST_SUFFIXES}")


def _iter_jsonl(path: Path) -> Iterator[tuple[int, Row | RecordError]]:
    """Rows of a JSONL file; the row number is the line number (blank lines are ignored). A line
    that is not valid UTF-8 is an error of that row, not of the file."""
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            context = row_context(path, line_number)
            try:
                line = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                yield line_number, RecordError(f"{context}: not valid UTF-8 (byte {error.start}: {error.reason})")
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                yield line_number, RecordError(f"{context}: invalid JSON: {error}")
                continue
            if not isinstance(row, dict):
                yield line_number, RecordError(f"{context}: a row must be a JSON object, got {type(row).__name__}")
                continue
            yield line_number, row


def iter_delimited(path: Path, delimiter: str = ",") -> Iterator[tuple[int, Row | RecordError]]:
    """Rows of a CSV/TSV file with a header; empty cells become None (= field absent). Bytes that are
    not UTF-8 make their row an error (they are read as lone surrogates, never decoded silently)."""
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        for row_number, row in enumerate(reader, start=1):
            if None in row:  # DictReader files surplus cells under the key None.
                yield row_number, RecordError(
                    f"{row_context(path, row_number)}: row has more cells than the header"
                )
                continue
            bad = next((key for key, value in row.items() if _has_undecodable(value) or _has_undecodable(key)), None)
            if bad is not None:
                yield row_number, RecordError(f"{row_context(path, row_number)}: field '{bad}' is not valid UTF-8")
                continue
            yield row_number, {key: (value if value != "" else None) for key, value in row.items()}


def _iter_parquet(path: Path) -> Iterator[tuple[int, Row | RecordError]]:
    """Rows of a Parquet file, read batch by batch."""
    import pyarrow.parquet as pq

    try:
        parquet_file = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises several unrelated types for a bad file
        raise RecordError(f"{path}: cannot read Parquet file: {error}") from error
    row_number = 0
    for batch in parquet_file.iter_batches():
        for row in batch.to_pylist():
            row_number += 1
            yield row_number, row


def _has_undecodable(text: object) -> bool:
    """Whether text read with errors='surrogateescape' held bytes that are not UTF-8."""
    return isinstance(text, str) and any("\udc80" <= ch <= "\udcff" for ch in text)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, str) and value == "")


def _required_text(fields: Row, name: str, context: str) -> str:
    value = fields.get(name)
    if _is_missing(value):
        raise RecordError(f"{context}: missing required field '{name}'")
    if isinstance(value, float) and not math.isfinite(value):
        raise RecordError(f"{context}: field '{name}' is not finite: {value!r}")
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise RecordError(f"{context}: field '{name}' must be text, got {value!r}")
    return str(value)


def decode_json(value: object, name: str, context: str) -> object:
    """A JSON-encoded cell (CSV, or a Parquet string column) decoded; other values unchanged."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise RecordError(f"{context}: field '{name}' is not valid JSON: {error}") from None


def finite_number(value: object, name: str, context: str) -> float:
    """`value` as a finite float, else RecordError naming the field."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RecordError(f"{context}: field '{name}' is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise RecordError(f"{context}: field '{name}' is not finite: {value!r}")
    return number


def _score_triplet(
    fields: Row, name: str, flat_columns: Sequence[str], context: str
) -> tuple[float, float, float] | None:
    """`name` as a list of 3 (or JSON of one); else the 3 flat columns, all or none of them."""
    listed = fields.get(name)
    if not _is_missing(listed):
        return as_score_triplet(decode_json(listed, name, context), name, context)
    present = [column for column in flat_columns if not _is_missing(fields.get(column))]
    if not present:
        return None
    missing = [column for column in flat_columns if column not in present]
    if missing:
        raise RecordError(f"{context}: missing required field '{missing[0]}' (other {name} columns are set)")
    values = [finite_number(fields[column], column, context) for column in flat_columns]
    return (values[0], values[1], values[2])


def _ratings(fields: Row, context: str) -> dict[str, dict[str, float]] | None:
    """``{dim: {annotator: rating}}``; null ratings (annotator did not rate) are dropped."""
    value = decode_json(fields.get("ratings"), "ratings", context)
    if _is_missing(value):
        return None
    if not isinstance(value, Mapping):
        raise RecordError(f"{context}: field 'ratings' must be a {{dim: {{annotator: rating}}}} map")
    out: dict[str, dict[str, float]] = {}
    for dim, by_annotator in value.items():
        if dim not in ALL_DIMS:
            raise RecordError(f"{context}: field 'ratings' has unknown dimension '{dim}'; expected {ALL_DIMS}")
        if by_annotator is None:
            continue
        if not isinstance(by_annotator, Mapping):
            raise RecordError(f"{context}: field 'ratings.{dim}' must be an {{annotator: rating}} map")
        rated = {str(a): finite_number(r, f"ratings.{dim}.{a}", context) for a, r in by_annotator.items()
                 if r is not None}
        if rated:
            out[dim] = rated
    return out or None


def _critique(fields: Row, has_critique_scores: bool, context: str) -> str | None:
    """Critique text; required (non-blank) once a critique field is present on the row."""
    text = fields.get("critique")
    if text is None and (has_critique_scores or not _is_missing(fields.get("critique_id"))):
        raise RecordError(f"{context}: field 'critique' is empty but critique_id/critique scores are set")
    if text is None:
        return None
    if not isinstance(text, str) or not text.strip():
        raise RecordError(f"{context}: field 'critique' is empty")
    return text


def _meta(fields: Row, context: str) -> dict:
    value = decode_json(fields.get("meta"), "meta", context)
    if _is_missing(value):
        return {}
    if not isinstance(value, Mapping):
        raise RecordError(f"{context}: field 'meta' must be a JSON object, got {value!r}")
    return dict(value)


def resolve_image(value: str, base_dir: Path) -> Path:
    """Absolute path of a manifest image entry; relative entries are taken from `base_dir`."""
    path = Path(value).expanduser()
    return Path(os.path.abspath(path if path.is_absolute() else base_dir / path))


def record_from_fields(fields: Row, context: str, base_dir: Path) -> EditRecord:
    """Validate one row of manifest fields into a record; RecordError names the field."""
    instruction = fields.get("instruction")
    if isinstance(instruction, str) and not instruction.strip():
        raise RecordError(f"{context}: field 'instruction' is empty")
    ids = {name: _required_text(fields, name, context) for name in REQUIRED_FIELDS}
    critique_scores = _score_triplet(fields, "critique_scores", CRITIQUE_COLUMNS, context)
    critique_id = fields.get("critique_id")
    task_type = fields.get("task_type")
    return EditRecord(
        pair_id=ids["pair_id"],
        source_id=ids["source_id"],
        source_image=resolve_image(ids["source_image"], base_dir),
        edited_image=resolve_image(ids["edited_image"], base_dir),
        instruction=ids["instruction"],
        mos=_score_triplet(fields, "mos", MOS_COLUMNS, context),
        critique=_critique(fields, critique_scores is not None, context),
        critique_id=None if _is_missing(critique_id) else str(critique_id),
        critique_scores=critique_scores,
        ratings=_ratings(fields, context),
        task_type=None if _is_missing(task_type) else str(task_type),
        meta=_meta(fields, context),
    )


def image_problem(path: Path) -> str | None:
    """Why `path` is not a readable image, or None when it opens, verifies and decodes.

    `verify()` checks structure but not that all pixel data is there (a truncated JPEG
    passes it), so the image is also fully decoded once.
    """
    if not path.is_file():
        return "image not found"
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.load()
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ...
        return f"unreadable image ({type(error).__name__}: {error})"
    return None


def _check_images(record: EditRecord, context: str, cache: dict[Path, str | None]) -> None:
    for name in ("source_image", "edited_image"):
        path: Path = getattr(record, name)
        if path not in cache:
            cache[path] = image_problem(path)
        if cache[path] is not None:
            raise RecordError(f"{context}: field '{name}': {cache[path]}: {path}")


def _check_unique(records: Sequence[EditRecord], context: str, seen: Mapping[str, str]) -> None:
    in_row: set[str] = set()
    for record in records:
        key = record.sample_id
        if key in seen or key in in_row:
            first = seen.get(key, context)
            raise RecordError(f"{context}: field 'pair_id'/'critique_id': duplicate id '{key}' (first at {first})")
        in_row.add(key)


def build_records(
    rows: Iterable[tuple[int, Row | RecordError]], *, path: Path, base_dir: Path, mapper: RowMapper | None = None,
    strict: bool = True, check_images: bool = True, seen_ids: dict[str, str] | None = None,
) -> ManifestReadResult:
    """Turn source rows into validated records under the bad-row policy.

    `mapper` converts a source row into manifest-field dicts (adapters; default: the row
    is already in manifest fields). A row yields all its records or none. `seen_ids`
    (sample_id -> `file:row`) carries duplicate detection across files.
    """
    result = ManifestReadResult(paths=[path])
    seen = {} if seen_ids is None else seen_ids
    image_cache: dict[Path, str | None] = {}
    # Opening and decoding every image is what takes time on a large manifest.
    for row_number, row in track(rows, f"checking images of {path.name}") if check_images else rows:
        context = row_context(path, row_number)
        try:
            if isinstance(row, RecordError):
                raise row
            field_dicts = mapper(row, context) if mapper is not None else [row]
            row_records = [record_from_fields(fields, context, base_dir) for fields in field_dicts]
            if check_images:
                for record in row_records:
                    _check_images(record, context, image_cache)
            _check_unique(row_records, context, seen)
        except RecordError as error:
            if strict:
                raise
            logger.warning("skipping bad row: %s", error)
            result.skipped.append(SkippedRow(str(path), row_number, str(error)))
            continue
        for record in row_records:
            seen[record.sample_id] = context
        result.records.extend(row_records)
    if result.skipped:
        logger.warning("%s", result.summary(max_reasons=0))
    return result


def read_manifest(
    path: str | Path, *, strict: bool = True, check_images: bool = True,
    image_root: str | Path | None = None, seen_ids: dict[str, str] | None = None,
) -> ManifestReadResult:
    """Read one manifest; relative image paths are taken from `image_root` or the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found")
    base_dir = Path(image_root) if image_root is not None else path.parent
    return build_records(
        iter_rows(path), path=path, base_dir=base_dir.absolute(), strict=strict,
        check_images=check_images, seen_ids=seen_ids,
    )


def read_manifests(paths: Iterable[str | Path], **kwargs) -> ManifestReadResult:
    """Concatenate several manifests; ids must be unique across all of them."""
    combined = ManifestReadResult()
    seen: dict[str, str] = {}
    for path in paths:
        part = read_manifest(path, seen_ids=seen, **kwargs)
        combined.paths.extend(part.paths)
        combined.records.extend(part.records)
        combined.skipped.extend(part.skipped)
    return combined
