"""The procedural benchmark: deterministic, well-formed, and its truth follows its construction."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import spearmanr

from ie_eval.cli import main as ie_eval_main
from ie_eval.data.normalize import normalize_records
from ie_eval.data.records import ALL_DIMS, CRITIQUE_DIMS, MOS_DIMS, EditRecord
from ie_eval.data.synth import generate_benchmark
from ie_eval.data.synth.critiques import format_final_assessment, parse_final_assessment
from ie_eval.data.synth.filters import visible_change
from ie_eval.data.synth.instructions import FAILURE_MODES, TASK_TYPES

N_SOURCES, SEED, IMAGE_SIZE, ANNOTATORS = 40, 7, 96, 5
MANIFEST_FIELDS = {
    "pair_id",
    "source_id",
    "source_image",
    "edited_image",
    "instruction",
    "task_type",
    "mos",
    "critique",
    "critique_id",
    "critique_scores",
    "ratings",
    "meta",
}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("synth")
    manifest = generate_benchmark(out, N_SOURCES, SEED, image_size=IMAGE_SIZE, annotators=ANNOTATORS)
    return {"dir": out, "rows": read_jsonl(manifest), "pairs": read_jsonl(out / "pairs.jsonl")}


def truth_by_mode(pairs: list[dict], dim: int) -> dict[str, float]:
    values: dict[str, list[float]] = defaultdict(list)
    for pair in pairs:
        values[pair["meta"]["failure_mode"]].append(pair["meta"]["truth_mos"][dim])
    return {mode: float(np.mean(v)) for mode, v in values.items()}


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    first = generate_benchmark(tmp_path / "a", 5, 3)
    second = generate_benchmark(tmp_path / "b", 5, 3)
    assert first.read_bytes() == second.read_bytes()
    assert (tmp_path / "a/pairs.jsonl").read_bytes() == (tmp_path / "b/pairs.jsonl").read_bytes()
    assert (tmp_path / "a/images/edit_00004_03.png").read_bytes() == (
        tmp_path / "b/images/edit_00004_03.png"
    ).read_bytes()


def test_worker_processes_do_not_change_the_output(tmp_path: Path) -> None:
    serial = generate_benchmark(tmp_path / "serial", 4, 2, workers=1)
    parallel = generate_benchmark(tmp_path / "parallel", 4, 2, workers=2)
    assert serial.read_bytes() == parallel.read_bytes()


def test_different_seed_changes_manifest(tmp_path: Path) -> None:
    first = generate_benchmark(tmp_path / "a", 5, 3)
    second = generate_benchmark(tmp_path / "b", 5, 4)
    assert first.read_bytes() != second.read_bytes()


def test_a_source_does_not_depend_on_how_many_sources_are_generated(tmp_path: Path) -> None:
    few = read_jsonl(generate_benchmark(tmp_path / "few", 2, 5))
    many = read_jsonl(generate_benchmark(tmp_path / "many", 6, 5))

    def first_source(rows: list[dict]) -> list[tuple]:
        return [
            (r["pair_id"], r["critique"], r["meta"]["truth_critique"])
            for r in rows
            if r["source_id"] == "s00000"
        ]

    assert first_source(few) and first_source(few) == first_source(many)


def test_ids_are_unique_and_consistent(bench: dict) -> None:
    pair_ids = [p["pair_id"] for p in bench["pairs"]]
    sample_ids = [(r["pair_id"], r["critique_id"]) for r in bench["rows"]]
    assert len(set(pair_ids)) == len(pair_ids) == N_SOURCES * 4
    assert len(set(sample_ids)) == len(sample_ids) == len(pair_ids) * 4
    assert {r["pair_id"] for r in bench["rows"]} == set(pair_ids)
    assert all(r["pair_id"].startswith(r["source_id"]) for r in bench["rows"])


def test_rows_follow_the_manifest_schema(bench: dict) -> None:
    for row in bench["rows"]:
        assert set(row) == MANIFEST_FIELDS
        assert row["task_type"] in TASK_TYPES and row["meta"]["failure_mode"] in FAILURE_MODES
        assert len(row["mos"]) == 3 and len(row["critique_scores"]) == 3
        assert list(row["ratings"]) == list(ALL_DIMS)
        for ratings in row["ratings"].values():
            assert len(ratings) == ANNOTATORS and all(
                isinstance(v, int) and 1 <= v <= 5 for v in ratings.values()
            )
        assert all(0.0 <= v <= 1.0 for v in row["meta"]["truth_mos"] + row["meta"]["truth_critique"])


def test_every_image_path_exists_and_loads(bench: dict) -> None:
    paths = {r[key] for r in bench["rows"] for key in ("source_image", "edited_image")}
    assert all(not Path(p).is_absolute() for p in paths)
    for relative in paths:
        with Image.open(bench["dir"] / relative) as image:
            assert image.mode == "RGB" and image.size == (IMAGE_SIZE, IMAGE_SIZE)


def test_critiques_are_short_and_end_with_a_parseable_final_assessment(bench: dict) -> None:
    for row in bench["rows"]:
        assert len(row["critique"].split()) < 80
        last_line = row["critique"].splitlines()[-1]
        assert last_line.startswith("[Final Assessment]")
        assert parse_final_assessment(row["critique"]) == tuple(row["meta"]["final_scores"])


def test_final_assessment_round_trips_in_both_formats() -> None:
    for json_style in (False, True):
        assert parse_final_assessment("Fine.\n" + format_final_assessment((3, 1, 5), json_style)) == (3, 1, 5)
    assert parse_final_assessment("no verdict here") is None


def test_correct_edits_align_better_than_wrong_target_ones(bench: dict) -> None:
    alignment = truth_by_mode(bench["pairs"], MOS_DIMS.index("instruction_alignment"))
    assert alignment["correct"] > alignment["wrong_target"] + 0.5
    assert alignment["correct"] > alignment["wrong_attribute"] + 0.3


def test_artifacts_lower_quality_and_collateral_lowers_preservation(bench: dict) -> None:
    quality = truth_by_mode(bench["pairs"], MOS_DIMS.index("visual_quality"))
    preservation = truth_by_mode(bench["pairs"], MOS_DIMS.index("content_preservation"))
    assert quality["artifacts"] < quality["correct"] - 0.3
    assert preservation["collateral"] < preservation["correct"] - 0.3


def test_twin_edits_differ_visibly_and_correct_edits_change_the_source(bench: dict) -> None:
    def load(relative: str) -> np.ndarray:
        return np.asarray(Image.open(bench["dir"] / relative))

    by_pair = {p["pair_id"]: p for p in bench["pairs"]}
    for pair in bench["pairs"]:
        edited = load(pair["edited_image"])
        twin = load(by_pair[pair["meta"]["twin_pair_id"]]["edited_image"])
        assert visible_change(edited, twin), pair["pair_id"]
        if pair["meta"]["failure_mode"] == "correct":
            assert visible_change(edited, load(pair["source_image"])), pair["pair_id"]


def test_no_text_only_rule_predicts_critique_accuracy(bench: dict) -> None:
    labels: dict[str, list[bool]] = defaultdict(list)
    for row in bench["rows"]:
        labels[row["critique"]].append(row["meta"]["truth_critique"][CRITIQUE_DIMS.index("accuracy")] > 0.5)
    both = [text for text, seen in labels.items() if len(set(seen)) == 2]
    rows_with_both = sum(len(labels[text]) for text in both)
    assert len(both) > 0.5 * len(labels) and rows_with_both > 0.5 * len(bench["rows"])
    # Predicting each text's majority label is the best any function of the text alone can do.
    majority_hits = sum(max(Counter(labels[text]).values()) for text in both)
    assert majority_hits / rows_with_both <= 0.6
    overall_hits = sum(max(Counter(seen).values()) for seen in labels.values())
    assert overall_hits / len(bench["rows"]) <= 0.6


def test_a_failed_looking_edit_signals_an_inaccurate_critique(bench: dict) -> None:
    """Optimistic critics: within each twin group, critiques are accurate more often on the better edit."""
    accuracy_index = CRITIQUE_DIMS.index("accuracy")
    by_pair: dict[str, list[float]] = defaultdict(list)
    for row in bench["rows"]:
        by_pair[row["pair_id"]].append(row["meta"]["truth_critique"][accuracy_index])
    better, worse = [], []
    for pair in bench["pairs"]:
        twin = next(p for p in bench["pairs"] if p["pair_id"] == pair["meta"]["twin_pair_id"])
        if np.mean(pair["meta"]["truth_mos"]) > np.mean(twin["meta"]["truth_mos"]):
            better.extend(by_pair[pair["pair_id"]])
            worse.extend(by_pair[twin["pair_id"]])
    assert np.mean(better) - np.mean(worse) > 0.2


def test_each_critique_text_is_accurate_for_the_pair_it_describes_only(bench: dict) -> None:
    by_text_id: dict[str, list[dict]] = defaultdict(list)
    for row in bench["rows"]:
        by_text_id[row["meta"]["text_id"]].append(row)
    for text_id, rows in by_text_id.items():
        assert len(rows) == 2 and rows[0]["critique"] == rows[1]["critique"], text_id
        for row in rows:
            assert row["meta"]["accurate"] == (row["pair_id"] == row["meta"]["describes_pair_id"]), text_id


def test_normalized_scores_correlate_with_truth(bench: dict) -> None:
    for dim in range(3):
        rho_mos = spearmanr(
            [p["mos"][dim] for p in bench["pairs"]], [p["meta"]["truth_mos"][dim] for p in bench["pairs"]]
        )
        rho_critique = spearmanr(
            [r["critique_scores"][dim] for r in bench["rows"]],
            [r["meta"]["truth_critique"][dim] for r in bench["rows"]],
        )
        assert rho_mos.statistic > 0.7, MOS_DIMS[dim]
        assert rho_critique.statistic > 0.7, CRITIQUE_DIMS[dim]


def test_targets_are_normalize_records_of_the_raw_ratings(bench: dict) -> None:
    records = [
        EditRecord(
            r["pair_id"],
            r["source_id"],
            Path(r["source_image"]),
            Path(r["edited_image"]),
            r["instruction"],
            critique=r["critique"],
            critique_id=r["critique_id"],
            ratings=r["ratings"],
        )
        for r in bench["rows"]
    ]
    normalized = normalize_records(records)
    assert np.allclose([r.mos for r in normalized], [r["mos"] for r in bench["rows"]], atol=1e-5)
    assert np.allclose(
        [r.critique_scores for r in normalized], [r["critique_scores"] for r in bench["rows"]], atol=1e-5
    )
    mos_by_pair = {p["pair_id"]: p["mos"] for p in bench["pairs"]}
    assert all(r["mos"] == mos_by_pair[r["pair_id"]] for r in bench["rows"])


def test_generate_benchmark_rejects_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown synth option"):
        generate_benchmark(tmp_path, 2, 0, colour_depth=3)
    with pytest.raises(ValueError, match="edits_per_source must be even"):
        generate_benchmark(tmp_path, 2, 0, edits_per_source=3)


def test_cli_writes_the_benchmark_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = [
        "data",
        "synth",
        "--out",
        str(out),
        "--n-sources",
        "3",
        "--seed",
        "1",
        "--edits-per-source",
        "2",
        "--critiques-per-pair",
        "3",
        "--image-size",
        "64",
        "--annotators",
        "3",
    ]
    assert ie_eval_main(argv) == 0
    for name in ("manifest.jsonl", "pairs.jsonl", "synth_config.json", "README.md"):
        assert (out / name).is_file(), name
    assert len(read_jsonl(out / "manifest.jsonl")) == 3 * 2 * 3
    config = json.loads((out / "synth_config.json").read_text())
    assert config["args"]["n_sources"] == 3 and config["counts"]["records"] == 18
    assert "wrote 18 records" in capsys.readouterr().out


def test_cli_reports_invalid_options_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["data", "synth", "--out", str(tmp_path), "--n-sources", "2", "--edits-per-source", "3"]
    assert ie_eval_main(argv) == 2
    assert "edits_per_source" in capsys.readouterr().err
