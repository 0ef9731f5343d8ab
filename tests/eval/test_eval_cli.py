"""`ie-eval eval` end to end on the synthetic fixture: classical metrics and the zero-shot judge."""

import json

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from ie_eval.eval.judge import parse_judge_scores
from ie_eval.eval.scorers import load_rgb_tensor
from ie_eval.metrics.image_quality import gmsd


def rows(out):
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def test_classical_eval_writes_results_markdown_and_plots(classical_runs):
    out = classical_runs["gmsd"]
    results = json.loads((out / "results.json").read_text())
    assert results["scorer"]["dims"] == ["visual_quality", "content_preservation"]
    assert results["pointwise"]["n_items"] == 32 and results["pointwise"]["parse_failures"] == 0
    assert "| **mean** |" in (out / "results.md").read_text()
    for name in ("scatter.png", "task_srcc.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 100


def test_classical_srcc_matches_scipy_on_the_written_predictions(classical_runs):
    out = classical_runs["psnr"]
    results = json.loads((out / "results.json").read_text())
    pointwise = [r for r in rows(out) if r["pointwise"]]
    assert len(pointwise) == 32
    for dim in ("visual_quality", "content_preservation"):
        pred = [r["pred"][dim] for r in pointwise]
        truth = [r["truth"][dim] for r in pointwise]
        expected = stats.spearmanr(pred, truth).statistic
        assert results["pointwise"]["metrics"][dim]["srcc"]["value"] == pytest.approx(expected, abs=1e-9)
    per_task = results["pointwise"]["per_task_srcc"]
    assert per_task and all(row["n"] >= 3 for row in per_task.values())
    for task, row in per_task.items():
        members = [r for r in pointwise if r["task_type"] == task]
        assert row["n"] == len(members)
        expected = stats.spearmanr([r["pred"]["content_preservation"] for r in members],
                                   [r["truth"]["content_preservation"] for r in members]).statistic
        assert row["content_preservation"] == pytest.approx(expected, abs=1e-9, nan_ok=True) or row[
            "content_preservation"] is None


def test_gmsd_scorer_predicts_negated_gmsd(classical_runs, synth_manifest):
    row = rows(classical_runs["gmsd"])[0]
    record = next(json.loads(line) for line in synth_manifest.read_text().splitlines()
                  if json.loads(line)["pair_id"] == row["pair_id"])
    source = load_rgb_tensor(synth_manifest.parent / record["source_image"]) * 255
    edited = load_rgb_tensor(synth_manifest.parent / record["edited_image"]) * 255
    assert row["pred"]["visual_quality"] == pytest.approx(-gmsd(source, edited), abs=1e-9)


def test_synthetic_pairwise_view_recomputed_from_predictions(classical_runs, synth_manifest):
    out = classical_runs["psnr"]
    mos = {r["pair_id"]: r["mos"] for r in map(json.loads, synth_manifest.read_text().splitlines())}
    preference = json.loads((out / "results.json").read_text())["preference"]
    groups: dict[str, list[dict]] = {}
    for row in rows(out):
        groups.setdefault(row["group_id"], []).append(row)
    credit = []
    for members in list(groups.values()):
        if len(members) != 2:
            continue
        a, b = members
        d_pred = np.mean(list(a["pred"].values())) - np.mean(list(b["pred"].values()))
        # The overall truth is the mean of all three MOS dims, whatever dims the scorer predicts.
        d_true = round(np.mean(mos[a["pair_id"]]), 6) - round(np.mean(mos[b["pair_id"]]), 6)
        if d_true != 0:
            credit.append(0.5 if d_pred == 0 else float((d_pred > 0) == (d_true > 0)))
    assert preference["n_groups"] == 32 and preference["excluded_groups"] == 0
    assert preference["overall"]["n_pairs"] == len(credit)
    assert preference["overall"]["pairwise_accuracy"] == pytest.approx(np.mean(credit))
    assert set(preference["per_dim"]) == {"visual_quality", "content_preservation"}


def test_kway_bench_with_ties_through_the_adapter(tmp_path, synth_manifest, eval_cli):
    images = sorted((synth_manifest.parent / "images").glob("edit_*.png"))[:2]
    source = sorted((synth_manifest.parent / "images").glob("src_*.png"))[0]
    table = tmp_path / "kway.jsonl"
    groups = [
        {"group_id": "g3", "source_image": str(source), "instruction": "x",
         "edited_images": [str(source), str(images[0]), str(images[1])], "ranks": [1, 2, 2]},
        {"group_id": "g2", "source_image": str(source), "instruction": "x",
         "edited_images": [str(images[0]), str(source)], "ranks": [2, 1]},
    ]
    table.write_text("".join(json.dumps(g) + "\n" for g in groups))
    eval_cli("psnr", f"kway:{table}", tmp_path / "out")
    preference = json.loads((tmp_path / "out/results.json").read_text())["preference"]
    overall = preference["overall"]
    # Identical image ranks first (PSNR capped at 100 dB); the truth tie is right once the calibrated
    # band covers the two edits' PSNR gap, which is the smallest tolerance that does it.
    assert preference["tie_policy"] == {"truth_ties": "tolerance", "pred_ties": "wrong", "tolerance": "calibrate"}
    assert overall["pairwise_accuracy"] == 1.0 and overall["n_pairs"] == 4
    assert overall["group_accuracy"]["K=2"]["accuracy"] == 1.0 and overall["group_accuracy"]["K=3"]["accuracy"] == 1.0
    psnr = {r["sample_id"]: r["pred"]["visual_quality"] for r in rows(tmp_path / "out")}
    assert overall["tolerance"] == pytest.approx(abs(psnr["g3/1"] - psnr["g3/2"]))


def test_zero_shot_judge_on_a_tiny_preset_counts_parse_failures(tmp_path, synth_bench, eval_cli):
    out = tmp_path / "judge"
    eval_cli("judge:tiny-qwen3.5", synth_bench, out, "--limit", "2", "--max-new-tokens", "4", "--max-pixels", "4096")
    results = json.loads((out / "results.json").read_text())
    written = rows(out)
    assert all(isinstance(r["text"], str) for r in written)
    # The accounting agrees with re-parsing every written answer.
    unparsed = [r for r in written if parse_judge_scores(r["text"], list(r["truth"])) is None]
    assert [r["pred"] is None for r in written] == [parse_judge_scores(r["text"], list(r["truth"])) is None
                                                   for r in written]
    assert results["generation"]["parse_failures"] == len(unparsed)
    assert results["generation"]["parse_failure_rate"] == pytest.approx(len(unparsed) / len(written))
    pointwise = results["pointwise"]
    assert pointwise["n_items"] == 2
    assert pointwise["parse_failures"] == sum(r["pred"] is None for r in written if r["pointwise"])
    assert pointwise["n_scored"] + pointwise["parse_failures"] == 2
    assert results["preference"]["excluded_groups"] + len(
        {r["group_id"] for r in written if r["pred"] is not None}) >= results["preference"]["n_groups"]


def test_peer_metrics_are_reported_beside_ours_and_recompute_from_the_predictions(classical_runs):
    from ie_eval.metrics.peer import main_score

    results = json.loads((classical_runs["psnr"] / "results.json").read_text())
    peer = results["peer"]
    scored = [r for r in rows(classical_runs["psnr"]) if r["pointwise"]]
    pred = [sum(r["pred"].values()) / len(r["pred"]) for r in scored]
    truth = [sum(r["truth"].values()) / len(r["truth"]) for r in scored]
    expected = main_score(pred, truth)
    dropped = peer["pointwise"]["ie_critic_r1"]["dropped"]
    assert dropped["srcc"] == pytest.approx(expected["srcc"]) and dropped["plcc"] == pytest.approx(expected["plcc"])
    assert peer["pointwise"]["ie_critic_r1"]["parse_failures"] == 0
    assert 0.0 <= peer["preference"]["editreward"]["k2_accuracy"] <= 1.0
    assert 0.0 <= peer["preference"]["editscore"]["average"] <= 1.0
    markdown = (classical_runs["psnr"] / "results.md").read_text()
    assert "MainScore, parse failures dropped" in markdown and "EditScore" in markdown
