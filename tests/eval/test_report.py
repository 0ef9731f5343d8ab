"""`ie-eval report` on two eval runs and two RL runs (one missing a logged key)."""

from lightning.pytorch.loggers import CSVLogger
from PIL import Image

from ie_eval.cli import main as cli_main


def write_rl_run(root, keys):
    logger = CSVLogger(save_dir=str(root), name="csv")
    for step in range(5):
        logger.log_metrics({key: float(step * (i + 1)) for i, key in enumerate(keys)}, step=step)
    logger.save()
    return root


def test_report_tables_and_pngs(classical_runs, tmp_path):
    rl_full = write_rl_run(tmp_path / "grpo", ["train/reward_mean", "train/response_length"])
    rl_partial = write_rl_run(tmp_path / "grpo-old", ["train/reward_mean"])
    out = tmp_path / "report"
    runs = [str(classical_runs["gmsd"]), str(classical_runs["psnr"]), str(rl_full), str(rl_partial),
            str(tmp_path / "missing")]
    assert cli_main(["report", *runs, "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    # Side-by-side table: a row per scorer with its SRCC values, then the pairwise table.
    table_rows = [line for line in report.splitlines() if line.startswith(("| gmsd |", "| psnr |"))]
    assert len(table_rows) == 8  # run list, pointwise, pairwise and peer comparison, per scorer
    assert "## Pairwise / K-way accuracy" in report
    # Ours beside the peers': each row carries that run's own results.json numbers.
    import json

    for name in ("gmsd", "psnr"):
        results = json.loads((classical_runs[name] / "results.json").read_text())
        row = [line for line in report.split("## Ours beside the peers")[1].splitlines() if line.startswith(f"| {name} |")]
        cells = [c.strip() for c in row[0].strip("|").split("|")]
        peer = results["peer"]
        assert cells[1] == "MOS" and float(cells[2]) == round(results["pointwise"]["metrics"]["mean"]["srcc"]["value"], 3)
        assert float(cells[4]) == round(peer["pointwise"]["ie_critic_r1"]["dropped"]["main_score"], 3)
        assert float(cells[9]) == round(100 * peer["preference"]["editreward"]["k2_accuracy"], 2)
        assert float(cells[11]) == round(100 * peer["preference"]["editscore"]["average"], 2)
    for name in ("srcc_by_scorer_mos.png", "task_srcc_mos.png", "scatter_gmsd.png", "scatter_psnr.png", "rl_curves_grpo.png",
                 "rl_curves_grpo-old.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG", name
    assert "not logged, skipped: response length (train)" in report  # grpo-old has no response length
    assert "missing: not a directory" in report


def test_task_srcc_averages_each_runs_dims_per_task():
    from ie_eval.eval.report import task_mean_srcc

    runs = {
        "a": {"pointwise": {"per_task_srcc": {"color": {"n": 4, "visual_quality": 0.2, "content_preservation": 0.4},
                                              "add": {"n": 3, "visual_quality": None}}}},
        "b": {"pointwise": {"per_task_srcc": {"color": {"n": 4, "visual_quality": -0.1, "content_preservation": 0.1}}}},
    }
    table = task_mean_srcc(runs, ("visual_quality", "instruction_alignment", "content_preservation"))
    assert list(table) == ["add", "color"]
    assert abs(table["color"]["a"] - 0.3) < 1e-12
    assert table["color"]["b"] == 0.0 and table["add"] == {"a": None, "b": None}
