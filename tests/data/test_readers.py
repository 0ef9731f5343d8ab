"""Manifest readers: formats agree, paths resolve, and every bad-row case names file, row and field."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ie_eval.data.readers import read_manifest, read_manifests
from ie_eval.data.records import RecordError
from ie_eval.data.writers import write_manifest

JSON_FIELDS = ("mos", "critique_scores", "ratings", "meta")


def make_image(path: Path, color: tuple[int, int, int] = (200, 30, 30), fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), color).save(path, format=fmt)
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    for name in ("src_0", "src_1", "edit_0", "edit_1", "edit_2"):
        make_image(tmp_path / "images" / f"{name}.png")
    return tmp_path


def good_rows() -> list[dict]:
    """Four valid rows: MOS only, two critiques of one pair, and a bare triplet."""
    return [
        {"pair_id": "p0", "source_id": "s0", "source_image": "images/src_0.png", "edited_image": "images/edit_0.png",
         "instruction": "make the sky red", "mos": [1.0, 2.0, 3.0], "task_type": "color", "meta": {"model": "m1"}},
        {"pair_id": "p1", "source_id": "s0", "source_image": "images/src_0.png", "edited_image": "images/edit_1.png",
         "instruction": "add a cat", "critique": "The cat is there.", "critique_id": "c1",
         "critique_scores": [0.5, 0.25, 0.75],
         "ratings": {"logicality": {"a": 1.0, "b": 2.0}, "accuracy": {"a": 3.0}, "usefulness": {"b": 4.0}}},
        {"pair_id": "p1", "source_id": "s0", "source_image": "images/src_0.png", "edited_image": "images/edit_1.png",
         "instruction": "add a cat", "critique": "No cat visible.", "critique_id": "c2",
         "critique_scores": [0.1, 0.2, 0.3]},
        {"pair_id": "p2", "source_id": "s1", "source_image": "images/src_1.png", "edited_image": "images/edit_2.png",
         "instruction": "remove the tree"},
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def encode_cells(row: dict) -> dict:
    """CSV/Parquet cells: lists and dicts as JSON strings."""
    return {k: json.dumps(v) if k in JSON_FIELDS and v is not None else v for k, v in row.items()}


def write_csv(path: Path, rows: list[dict]) -> Path:
    columns = sorted({key for row in rows for key in row})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in encode_cells(row).items()})
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    columns = sorted({key for row in rows for key in row})
    # mos / critique_scores as real list<double> columns, ratings / meta as JSON strings.
    table_rows = [{c: (row.get(c) if c in ("mos", "critique_scores") else encode_cells(row).get(c))
                   for c in columns} for row in rows]
    pq.write_table(pa.Table.from_pylist(table_rows), path)
    return path


def test_jsonl_csv_parquet_give_identical_records(data_dir: Path) -> None:
    rows = good_rows()
    from_jsonl = read_manifest(write_jsonl(data_dir / "m.jsonl", rows)).records
    from_csv = read_manifest(write_csv(data_dir / "m.csv", rows)).records
    from_parquet = read_manifest(write_parquet(data_dir / "m.parquet", rows)).records
    assert len(from_jsonl) == 4
    assert from_jsonl == from_csv == from_parquet


def test_fields_are_parsed_into_the_record(data_dir: Path) -> None:
    records = read_manifest(write_jsonl(data_dir / "m.jsonl", good_rows())).records
    first, critiqued = records[0], records[1]
    assert first.mos == (1.0, 2.0, 3.0) and first.task_type == "color" and first.meta == {"model": "m1"}
    assert critiqued.sample_id == "p1#c1" and critiqued.critique_scores == (0.5, 0.25, 0.75)
    assert critiqued.ratings == {"logicality": {"a": 1.0, "b": 2.0}, "accuracy": {"a": 3.0}, "usefulness": {"b": 4.0}}
    assert records[3].mos is None and records[3].critique is None


def test_flat_score_columns_match_list_columns(data_dir: Path) -> None:
    flat = []
    for row in good_rows():
        row = dict(row)
        for name, value in zip(("mos_visual_quality", "mos_instruction_alignment", "mos_content_preservation"),
                               row.pop("mos", None) or [None] * 3, strict=True):
            row[name] = value
        for name, value in zip(("logicality", "accuracy", "usefulness"),
                               row.pop("critique_scores", None) or [None] * 3, strict=True):
            row[name] = value
        flat.append(row)
    listed = read_manifest(write_jsonl(data_dir / "list.jsonl", good_rows())).records
    assert read_manifest(write_csv(data_dir / "flat.csv", flat)).records == listed


def test_relative_image_paths_resolve_against_manifest_dir(data_dir: Path) -> None:
    record = read_manifest(write_jsonl(data_dir / "m.jsonl", good_rows())).records[0]
    assert record.source_image == (data_dir / "images" / "src_0.png").absolute()
    assert record.edited_image.is_absolute() and record.edited_image.is_file()


def test_image_root_overrides_manifest_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("manifests") / "m.jsonl"
    rows = [dict(row, source_image=row["source_image"][len("images/"):],
                 edited_image=row["edited_image"][len("images/"):]) for row in good_rows()]
    records = read_manifest(write_jsonl(elsewhere, rows), image_root=data_dir / "images").records
    assert records[0].source_image == (data_dir / "images" / "src_0.png").absolute()


def test_write_manifest_round_trips_with_relative_paths(data_dir: Path) -> None:
    records = read_manifest(write_jsonl(data_dir / "m.jsonl", good_rows())).records
    out = write_manifest(records, data_dir / "out" / "copy.jsonl")
    first_line = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert first_line["source_image"] == "../images/src_0.png"
    assert read_manifest(out).records == records


def test_read_manifests_concatenates_files(data_dir: Path) -> None:
    rows = good_rows()
    result = read_manifests([write_jsonl(data_dir / "a.jsonl", rows[:2]), write_csv(data_dir / "b.csv", rows[2:])])
    assert [r.sample_id for r in result.records] == ["p0", "p1#c1", "p1#c2", "p2"]
    assert len(result.paths) == 2


def test_read_manifests_rejects_duplicate_ids_across_files(data_dir: Path) -> None:
    rows = good_rows()
    first, second = write_jsonl(data_dir / "a.jsonl", rows[:2]), write_jsonl(data_dir / "b.jsonl", rows[:1])
    with pytest.raises(RecordError) as error:
        read_manifests([first, second])
    assert f"{second}:1" in str(error.value) and f"{first}:1" in str(error.value)


# ----------------------------------------------------------------------------- bad rows


def truncate_file(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def setup_corrupt(data_dir: Path) -> str:
    (data_dir / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image at all")
    return "images/corrupt.png"


def setup_truncated_jpeg(data_dir: Path) -> str:
    path = data_dir / "images" / "trunc.jpg"
    Image.effect_noise((64, 64), 64).convert("RGB").save(path, format="JPEG", quality=95)
    truncate_file(path)
    return "images/trunc.jpg"


def setup_truncated_png(data_dir: Path) -> str:
    path = data_dir / "images" / "trunc.png"
    Image.effect_noise((64, 64), 64).convert("RGB").save(path, format="PNG")
    truncate_file(path)
    return "images/trunc.png"


def bad_row_cases(data_dir: Path) -> dict[str, tuple[dict, str]]:
    """Case name -> (row 2 replaced by this, field the message must name)."""
    base = good_rows()[1]
    without_source_id = {k: v for k, v in base.items() if k != "source_id"}
    return {
        "missing_image": (dict(base, edited_image="images/nope.png"), "edited_image"),
        "corrupt_image": (dict(base, edited_image=setup_corrupt(data_dir)), "edited_image"),
        "truncated_jpeg": (dict(base, source_image=setup_truncated_jpeg(data_dir)), "source_image"),
        "truncated_png": (dict(base, edited_image=setup_truncated_png(data_dir)), "edited_image"),
        "nan_score": (dict(base, critique_scores=[0.5, math.nan, 0.1]), "critique_scores[1]"),
        "inf_score": (dict(base, mos=[math.inf, 1.0, 1.0]), "mos[0]"),
        "empty_instruction": (dict(base, instruction="   "), "instruction"),
        "empty_critique": (dict(base, critique=" \n"), "critique"),
        "duplicate_id": (dict(good_rows()[0]), "pair_id"),
        "missing_field": (without_source_id, "source_id"),
    }


CASES = ["missing_image", "corrupt_image", "truncated_jpeg", "truncated_png", "nan_score", "inf_score",
         "empty_instruction", "empty_critique", "duplicate_id", "missing_field"]


def manifest_with_bad_row(data_dir: Path, case: str) -> tuple[Path, str]:
    bad_row, field_name = bad_row_cases(data_dir)[case]
    rows = good_rows()
    rows[1] = bad_row
    return write_jsonl(data_dir / f"{case}.jsonl", rows), field_name


@pytest.mark.parametrize("case", CASES)
def test_bad_row_error_names_file_row_and_field(data_dir: Path, case: str) -> None:
    path, field_name = manifest_with_bad_row(data_dir, case)
    with pytest.raises(RecordError) as error:
        read_manifest(path)
    message = str(error.value)
    assert f"{path}:2:" in message
    assert f"'{field_name}" in message


@pytest.mark.parametrize("case", CASES)
def test_bad_row_is_skipped_and_counted_when_not_strict(
    data_dir: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    path, _ = manifest_with_bad_row(data_dir, case)
    with caplog.at_level(logging.WARNING, logger="ie_eval.data.readers"):
        result = read_manifest(path, strict=False)
    assert [r.sample_id for r in result.records] == ["p0", "p1#c2", "p2"]
    assert [(s.row, Path(s.path)) for s in result.skipped] == [(2, path)]
    assert "skipped 1 bad rows" in result.summary() and f"{path}:2" in result.summary()
    assert any(f"{path}:2" in record.getMessage() for record in caplog.records)


def test_duplicate_message_points_at_first_occurrence(data_dir: Path) -> None:
    path, _ = manifest_with_bad_row(data_dir, "duplicate_id")
    with pytest.raises(RecordError, match=r"duplicate id 'p0' \(first at .*:1\)"):
        read_manifest(path)


def test_csv_bad_row_is_numbered_by_data_row(data_dir: Path) -> None:
    rows = good_rows()
    rows[2] = dict(rows[2], instruction="multi\nline instruction")  # a quoted newline: line != row
    rows[3] = dict(rows[3], mos=[1.0, 2.0, math.nan])
    path = write_csv(data_dir / "bad.csv", rows)
    with pytest.raises(RecordError) as error:
        read_manifest(path)
    assert f"{path}:4:" in str(error.value) and "'mos[2]'" in str(error.value)


def test_csv_flat_inf_column_is_named(data_dir: Path) -> None:
    row = dict(good_rows()[3], mos_visual_quality="1", mos_instruction_alignment="inf", mos_content_preservation="2")
    path = write_csv(data_dir / "flat.csv", [row])
    with pytest.raises(RecordError, match=r"flat\.csv:1: field 'mos_instruction_alignment' is not finite"):
        read_manifest(path)


def test_partial_flat_columns_are_a_missing_field(data_dir: Path) -> None:
    row = dict(good_rows()[3], mos_visual_quality=1.0, mos_instruction_alignment=2.0)
    with pytest.raises(RecordError, match=r":1: missing required field 'mos_content_preservation'"):
        read_manifest(write_jsonl(data_dir / "m.jsonl", [row]))


def test_critique_scores_without_critique_text_is_an_error(data_dir: Path) -> None:
    row = {k: v for k, v in good_rows()[1].items() if k != "critique"}
    with pytest.raises(RecordError, match=r":1: field 'critique' is empty"):
        read_manifest(write_jsonl(data_dir / "m.jsonl", [row]))


def test_invalid_json_line_names_the_line(data_dir: Path) -> None:
    path = data_dir / "m.jsonl"
    path.write_text(json.dumps(good_rows()[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"m\.jsonl:2: invalid JSON"):
        read_manifest(path)
    assert len(read_manifest(path, strict=False).records) == 1


def test_check_images_false_skips_image_validation(data_dir: Path) -> None:
    path, _ = manifest_with_bad_row(data_dir, "missing_image")
    assert len(read_manifest(path, check_images=False).records) == 4


def test_unsupported_suffix_is_rejected(data_dir: Path) -> None:
    path = data_dir / "m.txt"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(RecordError, match="unsupported manifest format"):
        read_manifest(path)


def test_write_manifest_refuses_nan(data_dir: Path) -> None:
    record = read_manifest(write_jsonl(data_dir / "m.jsonl", good_rows())).records[0]
    broken = type(record)(**{**record.__dict__, "meta": {"x": math.nan}})
    with pytest.raises(RecordError, match="p0"):
        write_manifest([broken], data_dir / "out.jsonl")



def test_invalid_utf8_in_a_jsonl_row_is_that_rows_error_and_skippable(data_dir: Path) -> None:
    path = data_dir / "m.jsonl"
    lines = [json.dumps(r).encode() for r in good_rows()]
    lines[1] = lines[1].replace(b"add a cat", b"add a \xff\xfe cat")
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(RecordError, match=r"m\.jsonl:2: not valid UTF-8"):
        read_manifest(path)
    result = read_manifest(path, strict=False)
    assert len(result.records) == 3 and [s.row for s in result.skipped] == [2]


def test_invalid_utf8_in_a_csv_row_names_row_and_field(data_dir: Path) -> None:
    path = write_csv(data_dir / "m.csv", good_rows())
    raw = path.read_bytes().replace(b"remove the tree", b"remove the \xc3\x28 tree")
    path.write_bytes(raw)
    with pytest.raises(RecordError, match=r"m\.csv:4: field 'instruction' is not valid UTF-8"):
        read_manifest(path)
    assert len(read_manifest(path, strict=False).records) == 3
