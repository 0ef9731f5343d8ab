"""Public-dataset adapters: expected layouts map to the right records; bad rows name file, row, field."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from ie_eval.data.adapters import ADAPTERS, group_preferences, load_dataset
from ie_eval.data.adapters.preference import competition_ranks
from ie_eval.data.normalize import normalize_records
from ie_eval.data.records import RecordError


def make_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 120, 200)).save(path)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in ("src/a.png", "src/b.png", "m1/a.png", "m2/a.png", "m3/a.png", "m1/b.png"):
        make_image(tmp_path / name)
    return tmp_path


def write_csv(path: Path, rows: list[dict]) -> Path:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()})
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def ebench_rows() -> list[dict]:
    return [
        {"source_image": "src/a.png", "edited_image": "m1/a.png", "instruction": "add a hat",
         "quality_mos": 3.5, "alignment_mos": 4.0, "preservation_mos": 2.5, "task": "add", "model": "m1"},
        {"source_image": "src/a.png", "edited_image": "m2/a.png", "instruction": "add a hat",
         "quality_mos": 1.0, "alignment_mos": 2.0, "preservation_mos": 3.0, "task": "add", "model": "m2"},
        {"source_image": "src/b.png", "edited_image": "m1/b.png", "instruction": "blur it",
         "quality_mos": 2.0, "alignment_mos": 2.0, "preservation_mos": 2.0, "task": "deblur", "model": "m1"},
    ]


def test_ebench_maps_columns_and_derives_ids(root: Path) -> None:
    records = load_dataset("ebench", write_csv(root / "ebench.csv", ebench_rows())).records
    assert [r.pair_id for r in records] == ["m1/a", "m2/a", "m1/b"]
    assert [r.source_id for r in records] == ["src/a", "src/a", "src/b"]
    assert records[0].mos == (3.5, 4.0, 2.5) and records[0].task_type == "add"
    assert records[1].meta == {"model": "m2", "dataset": "ebench"}
    assert records[0].edited_image == (root / "m1" / "a.png").absolute()


def test_ebench_custom_column_names(root: Path) -> None:
    renamed = [{("Quality" if k == "quality_mos" else k): v for k, v in row.items()} for row in ebench_rows()]
    result = load_dataset("ebench", write_csv(root / "e.csv", renamed), columns={"visual_quality": "Quality"})
    assert result.records[0].mos == (3.5, 4.0, 2.5)


def test_ebench_unknown_column_key_is_rejected(root: Path) -> None:
    with pytest.raises(ValueError, match="unknown column key 'qualty'"):
        load_dataset("ebench", write_csv(root / "e.csv", ebench_rows()), columns={"qualty": "Q"})


def test_ebench_bad_mos_names_file_row_field_and_can_be_skipped(root: Path) -> None:
    rows = ebench_rows()
    rows[1]["alignment_mos"] = "nan"
    path = write_csv(root / "e.csv", rows)
    with pytest.raises(RecordError, match=r"e\.csv:2: field 'instruction_alignment' is not finite"):
        load_dataset("ebench", path)
    result = load_dataset("ebench", path, strict=False)
    assert len(result.records) == 2 and "skipped 1 bad rows" in result.summary()


def test_ebench_missing_image_names_row(root: Path) -> None:
    rows = ebench_rows()
    rows[2]["edited_image"] = "m9/b.png"
    with pytest.raises(RecordError, match=r"e\.csv:3: field 'edited_image': image not found"):
        load_dataset("ebench", write_csv(root / "e.csv", rows))


def test_reasonedit_cot_reads_critique_and_optional_mos(root: Path) -> None:
    rows = [dict(ebench_rows()[0], cot="Step 1: the hat is added."),
            {k: v for k, v in ebench_rows()[2].items() if not k.endswith("_mos")} | {"cot": "Blurry."}]
    records = load_dataset("reasonedit_cot", write_jsonl(root / "cot.jsonl", rows)).records
    assert records[0].critique == "Step 1: the hat is added." and records[0].mos == (3.5, 4.0, 2.5)
    assert records[1].mos is None and records[1].critique_id and records[0].critique_id != records[1].critique_id


def test_reasonedit_cot_empty_text_is_a_bad_row(root: Path) -> None:
    rows = [dict(ebench_rows()[0], cot="ok"), dict(ebench_rows()[1], cot="  ")]
    with pytest.raises(RecordError, match=r"cot\.jsonl:2: field 'critique' is empty"):
        load_dataset("reasonedit_cot", write_jsonl(root / "cot.jsonl", rows))


def reward_row(critique: str, **scores: object) -> dict:
    base = {k: v for k, v in ebench_rows()[0].items() if not k.endswith("_mos")}
    return {**base, "critique": critique, **scores}


def test_reasonedit_reward_reads_scores(root: Path) -> None:
    rows = [reward_row("A", logicality=0.9, accuracy=0.8, usefulness=0.7),
            reward_row("B", logicality=0.1, accuracy=0.2, usefulness=0.3)]
    records = load_dataset("reasonedit_reward", write_csv(root / "r.csv", rows)).records
    assert [r.critique_scores for r in records] == [(0.9, 0.8, 0.7), (0.1, 0.2, 0.3)]
    assert records[0].pair_id == records[1].pair_id and records[0].sample_id != records[1].sample_id


def test_reasonedit_reward_ratings_column_gives_mean_scores(root: Path) -> None:
    ratings = {"logicality": {"x": 1, "y": 3}, "accuracy": {"x": 2}, "usefulness": {"x": 4, "y": 5}}
    records = load_dataset("reasonedit_reward", write_csv(root / "r.csv", [reward_row("A", ratings=ratings)])).records
    assert records[0].critique_scores == (2.0, 2.0, 4.5)
    assert records[0].ratings["logicality"] == {"x": 1.0, "y": 3.0}


def test_reasonedit_reward_long_format_merges_annotators(root: Path) -> None:
    rows = [reward_row("A", annotator="x", logicality=1, accuracy=2, usefulness=3),
            reward_row("B", annotator="x", logicality=5, accuracy=5, usefulness=5),
            reward_row("A", annotator="y", logicality=3, accuracy=4, usefulness=5)]
    records = load_dataset("reasonedit_reward", write_csv(root / "r.csv", rows), annotator_column=True).records
    assert [r.critique for r in records] == ["A", "B"]
    assert records[0].ratings == {"logicality": {"x": 1.0, "y": 3.0}, "accuracy": {"x": 2.0, "y": 4.0},
                                  "usefulness": {"x": 3.0, "y": 5.0}}
    assert records[0].critique_scores == (2.0, 3.0, 4.0)
    normalized = normalize_records(records)
    assert normalized[0].critique_scores != records[0].critique_scores


def test_reasonedit_reward_long_format_duplicate_annotator_names_row(root: Path) -> None:
    rows = [reward_row("A", annotator="x", logicality=1, accuracy=2, usefulness=3),
            reward_row("A", annotator="x", logicality=2, accuracy=2, usefulness=2)]
    with pytest.raises(RecordError, match=r"r\.csv:2: field 'annotator': 'x' already rated"):
        load_dataset("reasonedit_reward", write_csv(root / "r.csv", rows), annotator_column=True)


def test_reasonedit_reward_infinite_rating_names_row_and_field(root: Path) -> None:
    rows = [reward_row("A", annotator="x", logicality=1, accuracy=2, usefulness=3),
            reward_row("A", annotator="y", logicality=1, accuracy="inf", usefulness=3)]
    path = write_csv(root / "r.csv", rows)
    with pytest.raises(RecordError, match=r"r\.csv:2: field 'accuracy' is not finite"):
        load_dataset("reasonedit_reward", path, annotator_column=True)
    result = load_dataset("reasonedit_reward", path, annotator_column=True, strict=False)
    assert result.records[0].ratings["accuracy"] == {"x": 2.0} and len(result.skipped) == 1


def test_iebench_keeps_overall_mos_in_meta(root: Path) -> None:
    rows = [{"source_image": "src/a.png", "edited_image": "m1/a.png", "instruction": "hat", "mos": 61.5},
            {"source_image": "src/a.png", "edited_image": "m2/a.png", "instruction": "hat", "mos": 40.0,
             "perceptual_quality": 1, "text_alignment": 2, "fidelity": 3}]
    records = load_dataset("iebench", write_jsonl(root / "ie.jsonl", rows)).records
    assert records[0].meta["mos_overall"] == 61.5 and records[0].mos is None
    assert records[1].mos == (1.0, 2.0, 3.0)


def test_iebench_missing_mos_names_field(root: Path) -> None:
    rows = [{"source_image": "src/a.png", "edited_image": "m1/a.png", "instruction": "hat"}]
    with pytest.raises(RecordError, match=r"ie\.jsonl:1: missing required field 'mos_overall' \(column 'mos'\)"):
        load_dataset("iebench", write_jsonl(root / "ie.jsonl", rows))


def pairwise_rows() -> list[dict]:
    shared = {"source_image": "src/a.png", "instruction": "add a hat", "edited_a": "m1/a.png", "edited_b": "m2/a.png"}
    return [dict(shared, label="A", model_a="m1", model_b="m2"), dict(shared, label="rightvote"),
            dict(shared, label="tievote")]


def test_pairwise_labels_become_ranks(root: Path) -> None:
    result = load_dataset("genai_bench", write_csv(root / "g.csv", pairwise_rows()))
    ranks = [(r.pair_id, r.meta["rank"]) for r in result.records]
    assert ranks == [("genai_bench:1/A", 1), ("genai_bench:1/B", 2), ("genai_bench:2/A", 2),
                     ("genai_bench:2/B", 1), ("genai_bench:3/A", 1), ("genai_bench:3/B", 1)]
    assert result.records[0].meta["model"] == "m1" and result.records[0].source_id == "src/a"
    groups = group_preferences(result.records)
    assert [g.pairs() for g in groups] == [[(0, 1, 1.0)], [(0, 1, 0.0)], [(0, 1, 0.5)]]


def test_pairwise_unknown_label_names_row_and_field(root: Path) -> None:
    rows = pairwise_rows()
    rows[1]["label"] = "maybe"
    with pytest.raises(RecordError, match=r"g\.csv:2: field 'label': unknown preference label"):
        load_dataset("aurora_bench", write_csv(root / "g.csv", rows))
    result = load_dataset("aurora_bench", write_csv(root / "g.csv", rows), strict=False)
    assert len(result.records) == 4 and {len(g.records) for g in group_preferences(result.records)} == {2}


def test_pairwise_custom_label_map(root: Path) -> None:
    rows = [dict(pairwise_rows()[0], label="left_better")]
    records = load_dataset("pairwise", write_csv(root / "g.csv", rows), label_map={"left_better": "A"}).records
    assert [r.meta["rank"] for r in records] == [1, 2]


def kway_rows() -> list[dict]:
    return [
        {"group_id": "g1", "source_image": "src/a.png", "instruction": "add a hat",
         "edited_images": ["m1/a.png", "m2/a.png", "m3/a.png"], "ranks": [2, 1, 2], "models": ["m1", "m2", "m3"]},
        {"group_id": "g2", "source_image": "src/b.png", "instruction": "blur",
         "edited_images": ["m1/b.png", "m1/a.png"], "scores": [0.2, 0.9]},
    ]


def test_kway_groups_with_ranks_and_scores(root: Path) -> None:
    records = load_dataset("editreward_bench", write_csv(root / "k.csv", kway_rows())).records
    groups = group_preferences(records)
    assert [(g.group_id, g.k, g.ranks) for g in groups] == [("g1", 3, (2, 1, 2)), ("g2", 2, (2, 1))]
    assert groups[0].pairs() == [(0, 1, 0.0), (0, 2, 0.5), (1, 2, 1.0)]
    assert records[1].meta["model"] == "m2" and records[0].pair_id == "g1/0"


def test_kway_rank_count_mismatch_names_row(root: Path) -> None:
    rows = kway_rows()
    rows[0]["ranks"] = [1, 2]
    with pytest.raises(RecordError, match=r"k\.csv:1: field 'ranks' has 2 values for 3 edited images"):
        load_dataset("editreward_bench", write_csv(root / "k.csv", rows))


def test_kway_group_size_restriction(root: Path) -> None:
    path = write_csv(root / "k.csv", kway_rows())
    result = load_dataset("kway", path, group_sizes={2}, strict=False)
    assert [g.group_id for g in group_preferences(result.records)] == ["g2"]
    assert "allowed K: [2]" in result.skipped[0].reason


def test_competition_ranks_share_ties() -> None:
    assert competition_ranks([3, 5, 5]) == [3, 1, 1]
    assert competition_ranks([3, 5, 5], higher_is_better=False) == [1, 2, 2]


def test_json_array_and_tsv_tables_are_read(root: Path) -> None:
    rows = ebench_rows()
    (root / "e.json").write_text(json.dumps(rows), encoding="utf-8")
    with (root / "e.tsv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    expected = load_dataset("ebench", write_csv(root / "e.csv", rows)).records
    assert load_dataset("ebench", root / "e.json").records == expected
    assert load_dataset("ebench", root / "e.tsv").records == expected


def test_registry_lists_every_layout_and_rejects_unknown(root: Path) -> None:
    assert {"ebench", "reasonedit_cot", "reasonedit_reward", "iebench", "genai_bench", "aurora_bench",
            "editreward_bench", "manifest"} <= set(ADAPTERS)
    with pytest.raises(ValueError, match="unknown dataset adapter 'nope'"):
        load_dataset("nope", root / "x.csv")


def test_editreward_data_training_layout_puts_the_preferred_edit_first(root: Path) -> None:
    rows = [{"prompt": "add a hat", "path_src": "src/a.png", "path1": "m2/a.png", "path2": "m1/a.png",
             "model1": "m2", "model2": "m1", "confidence": 0.9}]
    records = load_dataset("editreward_data", write_jsonl(root / "train.jsonl", rows)).records
    assert [(r.edited_image.name, r.meta["rank"], r.meta["model"]) for r in records] == [("a.png", 1, "m2"),
                                                                                         ("a.png", 2, "m1")]
    assert records[0].edited_image.parent.name == "m2" and records[0].instruction == "add a hat"
    assert group_preferences(records)[0].pairs() == [(0, 1, 1.0)]
