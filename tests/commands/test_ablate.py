"""`ie-eval ablate`: a grid of overlays x seeds -> per-run metrics, a mean +- std table, resumable."""

import json

import pytest
import yaml

from ie_eval.commands.ablate import ablation_table, load_grid, main

FAST = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.limit_test_batches", "1", "--data.init_args.batch_size", "4", "--data.init_args.eval_batch_size", "8"]


def test_table_reports_mean_and_std_over_seeds():
    runs = {"a": [{"mean_srcc": 0.5, "logicality_srcc": 0.1}, {"mean_srcc": 0.7, "logicality_srcc": 0.3}]}
    table = ablation_table(runs)
    assert "| a | 2 | 0.600 ± 0.141 | 0.200 ± 0.141 |" in table
    assert table.rstrip().endswith("n/a |")  # format stability exists only for critic runs


def test_grid_errors_name_the_file_and_the_missing_overlay(tmp_path):
    bad = tmp_path / "grid.yaml"
    bad.write_text(yaml.safe_dump({"base": [], "seeds": [0], "variants": {"x": ["experiments/nope.yaml"]}}))
    with pytest.raises(FileNotFoundError, match="grid.yaml: variant 'x': overlay not found: experiments/nope.yaml"):
        load_grid(bad)
    bad.write_text(yaml.safe_dump({"seeds": [0]}))
    with pytest.raises(ValueError, match=r"lacks \['base', 'variants'\]"):
        load_grid(bad)


def test_grid_runs_every_variant_and_seed_then_resumes(tmp_path, synth_manifest):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({
        "base": ["configs/rm/tiny.yaml", "experiments/ablate_base.yaml"],
        "seeds": [0, 1],
        "variants": {"pooling=mean": ["experiments/rm_pooling_mean.yaml"]},
    }))
    out = tmp_path / "out"
    args = ["--grid", str(grid), "--out", str(out), "--doc", str(tmp_path / "ablations.md"),
            "--data.init_args.manifest", str(synth_manifest), *FAST]
    assert main(args) == 0
    metrics = [json.loads((out / "pooling-mean" / f"seed{s}" / "metrics.json").read_text()) for s in (0, 1)]
    assert all("mean_srcc" in m for m in metrics)
    doc = (tmp_path / "ablations.md").read_text()
    assert "| pooling=mean | 2 |" in doc and "ie-eval ablate --grid" in doc
    stamp = (out / "pooling-mean" / "seed0" / "metrics.json").stat().st_mtime_ns
    assert main(args) == 0  # finished runs are read back, not retrained
    assert (out / "pooling-mean" / "seed0" / "metrics.json").stat().st_mtime_ns == stamp
    (out / "pooling-mean" / "seed1" / "metrics.json").unlink()  # seed 1 interrupted: checkpoints, no metrics
    assert main(args) == 0  # redone from the start, though its directory holds an earlier run's checkpoints
    assert "mean_srcc" in json.loads((out / "pooling-mean" / "seed1" / "metrics.json").read_text())
