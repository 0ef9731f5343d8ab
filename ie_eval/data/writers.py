"""Write EditRecords as a JSONL manifest that `ie_eval/data/readers.py` reads back unchanged."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from ie_eval.data.records import EditRecord, RecordError


def _relative_path(path: Path, base_dir: Path) -> str:
    try:
        return Path(os.path.relpath(path, base_dir)).as_posix()
    except ValueError:  # another drive on Windows: keep it absolute
        return Path(path).as_posix()


def record_to_row(record: EditRecord, base_dir: Path) -> dict:
    """Manifest fields of a record (JSON-ready), image paths relative to `base_dir`; None fields omitted."""
    row = {
        "pair_id": record.pair_id,
        "source_id": record.source_id,
        "source_image": _relative_path(record.source_image, base_dir),
        "edited_image": _relative_path(record.edited_image, base_dir),
        "instruction": record.instruction,
        "mos": list(record.mos) if record.mos is not None else None,
        "critique": record.critique,
        "critique_id": record.critique_id,
        "critique_scores": list(record.critique_scores) if record.critique_scores is not None else None,
        "ratings": {d: dict(r) for d, r in record.ratings.items()} if record.ratings else None,
        "task_type": record.task_type,
        "meta": dict(record.meta) if record.meta else None,
    }
    return {key: value for key, value in row.items() if value is not None}


def write_manifest(records: Iterable[EditRecord], path: str | Path) -> Path:
    """Write records as a JSONL manifest whose image paths are relative to its folder."""
    path = Path(path)
    if path.suffix.lower() != ".jsonl":
        raise ValueError(f"{path}: write_manifest writes JSONL; name the file *.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    base_dir = path.parent.absolute()
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            try:
                line = json.dumps(record_to_row(record, base_dir), ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as error:
                raise RecordError(f"{path}: record '{record.sample_id}' is not JSON-serializable: {error}") from error
            handle.write(line + "\n")
    return path
