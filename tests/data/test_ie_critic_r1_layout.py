"""IE-Critic-R1's own training layout (images [source, edited], problem, answer, edit_inst) -> records."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ie_eval.data.adapters import load_dataset
from ie_eval.data.records import RecordError, overall_mos

PROBLEM = "<image><image> Edit Instruction: {}\n\nGiven the source image and the edited image, ..."


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in ("src/a.png", "edit/a1.png", "edit/a2.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (10, 120, 200)).save(tmp_path / name)
    return tmp_path


def test_paths_answer_and_instruction_become_a_record_with_one_overall_mos(root: Path) -> None:
    rows = [
        {"images": ["src/a.png", "edit/a1.png"], "problem": PROBLEM.format("add a hat"), "answer": "3.25",
         "edit_inst": "add a hat"},
        {"images": ["src/a.png", "edit/a2.png"], "problem": PROBLEM.format("make it red"), "answer": 4},
    ]
    records = load_dataset("ie_critic_r1", write_jsonl(root / "train.jsonl", rows)).records
    assert [r.meta["mos_overall"] for r in records] == [3.25, 4.0]
    assert [overall_mos(r) for r in records] == [3.25, 4.0] and all(r.mos is None for r in records)
    assert records[1].instruction == "make it red"  # read from `problem` when edit_inst is absent
    assert records[0].source_id == records[1].source_id == "src/a" and records[0].pair_id == "edit/a1"
    assert records[0].source_image == (root / "src/a.png").absolute() and records[0].meta["problem"].startswith("<image>")


def test_embedded_image_cells_of_a_parquet_export_are_written_once_next_to_the_table(root: Path) -> None:
    source, edited = png((200, 10, 10)), png((10, 200, 10))
    table = pa.table({
        "images": [[{"bytes": source, "path": None}, {"bytes": edited, "path": None}],
                   [{"bytes": source, "path": None}, {"bytes": png((0, 0, 0)), "path": None}]],
        "problem": [PROBLEM.format("hat"), PROBLEM.format("red")],
        "answer": ["2.5", "1.0"],
        "edit_inst": ["hat", "red"],
    })
    pq.write_table(table, root / "train.parquet")
    records = load_dataset("ie_critic_r1", root / "train.parquet").records
    assert records[0].source_image == records[1].source_image and records[0].source_id == records[1].source_id
    assert records[0].source_image.parent == root / "train.images"
    assert Image.open(records[0].edited_image).getpixel((0, 0)) == (10, 200, 10)
    assert len(list((root / "train.images").iterdir())) == 3  # the shared source is stored once


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"images": ["src/a.png"], "answer": 3, "edit_inst": "x"}, r"train\.jsonl:1: field 'images' must hold \[source, edited\], got 1"),
        ({"images": ["src/a.png", "edit/a1.png"], "answer": "good", "edit_inst": "x"}, r"train\.jsonl:1: field 'answer' is not a number"),
        ({"images": ["src/a.png", "edit/a1.png"], "answer": "nan", "edit_inst": "x"}, r"field 'answer' is not finite"),
        ({"images": ["src/a.png", "edit/a1.png"], "answer": 3, "problem": "rate it"}, r"no instruction"),
        ({"images": ["src/a.png", {"bytes": "bm90IGFuIGltYWdl"}], "answer": 3, "edit_inst": "x"}, r"images\[1\]: embedded image bytes must be binary"),
        ({"images": ["src/a.png", "edit/missing.png"], "answer": 3, "edit_inst": "x"}, r"missing\.png"),
    ],
)
def test_bad_rows_name_the_file_row_and_field(root: Path, row: dict, message: str) -> None:
    path = write_jsonl(root / "train.jsonl", [row])
    with pytest.raises(RecordError, match=message):
        load_dataset("ie_critic_r1", path)
    good = {"images": ["src/a.png", "edit/a1.png"], "answer": 3, "edit_inst": "x"}
    result = load_dataset("ie_critic_r1", write_jsonl(root / "train.jsonl", [row, good]), strict=False)
    assert len(result.records) == 1 and len(result.skipped) == 1  # the bad row is counted, the good one kept


def test_corrupt_embedded_bytes_name_the_row_and_image(root: Path) -> None:
    table = pa.table({"images": [[{"bytes": png((1, 2, 3)), "path": None}, {"bytes": b"\x89PNG broken", "path": None}]],
                      "answer": ["2.5"], "edit_inst": ["hat"]})
    pq.write_table(table, root / "bad.parquet")
    with pytest.raises(RecordError, match=r"bad\.parquet:1: images\[1\]: embedded image bytes are not a readable image"):
        load_dataset("ie_critic_r1", root / "bad.parquet")
