"""IE-Critic-R1's training layout (`Coobiw/IE-Bench-4k` as its EasyR1 trainer reads it).

One row per edit: `images` = [source, edited], `problem` (their prompt, `<image><image> Edit
Instruction: ...`), `answer` (the overall MOS on the 1-5 scale, a number or a numeric string) and
`edit_inst` (the instruction). An image entry is a path, or a Hugging Face `Image` cell
(`{"bytes": ..., "path": ...}`, as a parquet export of the dataset stores it): embedded bytes are
written once to `<table>.images/<sha1>.<ext>` next to the table so records can point at files.
The answer goes to `meta["mos_overall"]` (as the `iebench` table adapter keeps IE-Bench's one MOS);
`problem` is kept in `meta["problem"]`.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, UnidentifiedImageError

from ie_eval.data.adapters.tables import (
    Columns,
    TableOptions,
    cell,
    finite,
    json_list,
    load_table,
    merge_columns,
    path_id,
)
from ie_eval.data.readers import ManifestReadResult, Row
from ie_eval.data.records import RecordError

if TYPE_CHECKING:
    from typing_extensions import Unpack

IE_CRITIC_R1_COLUMNS: Mapping[str, str | None] = {
    "images": "images",
    "problem": "problem",  # optional when edit_inst is given
    "answer": "answer",
    "instruction": "edit_inst",  # optional: read from `problem` ("Edit Instruction: ...") when absent
    "pair_id": "pair_id",  # optional; default: edited image path without extension
    "source_id": "source_id",  # optional; default: source image path without extension
    "task_type": "task",  # optional
}
_PROBLEM_INSTRUCTION = re.compile(r"Edit Instruction:\s*(.+)", flags=re.IGNORECASE)


def image_entry(entry: object, where: str, cache: Path) -> tuple[str, str]:
    """(path, id) of one `images` entry: the path itself (id: it without extension), or embedded bytes
    written to `cache` under their content hash (id: `sha1:<hash>`, so equal images share a source id)."""
    if isinstance(entry, str) and entry:
        return entry, path_id(entry)
    if isinstance(entry, Mapping):
        data = entry.get("bytes")
        if data:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise RecordError(f"{where}: embedded image bytes must be binary (a parquet image cell), "
                                  f"got {type(data).__name__}")
            data = bytes(data)
            try:
                with Image.open(io.BytesIO(data)) as image:
                    suffix = (image.format or "png").lower()
                    image.verify()
            except (UnidentifiedImageError, OSError) as error:
                raise RecordError(f"{where}: embedded image bytes are not a readable image ({error})") from None
            digest = hashlib.sha1(data).hexdigest()
            target = cache / f"{digest}.{suffix}"
            if not target.exists():
                cache.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            return str(target), f"sha1:{digest[:16]}"
        if entry.get("path"):
            return str(entry["path"]), path_id(entry["path"])
    raise RecordError(f"{where}: expected an image path or an {{'bytes', 'path'}} image cell, got {type(entry).__name__}")


def _instruction(row: Row, columns: Mapping[str, str | None], context: str) -> str:
    instruction = cell(row, columns, "instruction", context, required=False)
    if instruction is not None:
        return str(instruction)
    problem = cell(row, columns, "problem", context, required=False)
    match = _PROBLEM_INSTRUCTION.search(str(problem or ""))
    if match is None:
        raise RecordError(f"{context}: no instruction: column '{columns['instruction']}' is empty and "
                          f"'{columns['problem']}' has no 'Edit Instruction: ...' line")
    return match.group(1).strip()


def load_ie_critic_r1(path: str | Path, *, columns: Columns = None, **options: Unpack[TableOptions]) -> ManifestReadResult:
    """Records with `meta["mos_overall"]` (the `answer`) from IE-Critic-R1's training table (.jsonl / .json / .parquet)."""
    merged = merge_columns(IE_CRITIC_R1_COLUMNS, columns, "ie_critic_r1")
    cache = Path(path).with_suffix(".images")

    def mapper(row: Row, context: str) -> list[dict]:
        images = json_list(cell(row, merged, "images", context), "images", context)
        if len(images) != 2:
            raise RecordError(f"{context}: field 'images' must hold [source, edited], got {len(images)} image(s)")
        (source, source_key), (edited, edited_key) = (
            image_entry(entry, f"{context}: images[{i}]", cache) for i, entry in enumerate(images)
        )
        answer = cell(row, merged, "answer", context)
        pair_id = cell(row, merged, "pair_id", context, required=False)
        source_id = cell(row, merged, "source_id", context, required=False)
        problem = cell(row, merged, "problem", context, required=False)
        meta = {"dataset": "ie_critic_r1", "mos_overall": finite(str(answer).strip(), "answer", context)}
        if problem is not None:
            meta["problem"] = str(problem)
        return [{
            "pair_id": edited_key if pair_id is None else str(pair_id),
            "source_id": source_key if source_id is None else str(source_id),
            "source_image": source, "edited_image": edited, "instruction": _instruction(row, merged, context),
            "task_type": cell(row, merged, "task_type", context, required=False), "meta": meta,
        }]

    return load_table(path, mapper, **options)
