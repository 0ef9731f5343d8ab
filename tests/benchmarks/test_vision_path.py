"""The vision-path diagnostic runs end to end on a tiny synthetic set and writes its table."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

from ie_eval.data.readers import read_manifest
from ie_eval.data.synth.benchmark import generate_benchmark
from ie_eval.eval.scorers import FullReferenceScorer

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "vision_path.py"


def load_script():
    spec = importlib.util.spec_from_file_location("vision_path", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vision_path_writes_every_learner(tmp_path: Path) -> None:
    out = tmp_path / "vision_path.json"
    report = load_script().main(["--sources", "24", "--epochs", "2", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert set(report["results"]) == {"ssim", "vision-direct", "decoder-image-tokens", "critic-prefill"}
    assert report["train_pairs"] + report["test_pairs"] <= 24 * 4
    for name in ("vision-direct", "decoder-image-tokens", "critic-prefill"):
        row = report["results"][name]
        assert [h["epoch"] for h in row["history"]] == [0, 1]
        assert all(math.isfinite(h["train_huber"]) and h["train_huber"] > 0 for h in row["history"])
        assert all(-1.0 <= s <= 1.0 for s in row["test_srcc"])


def test_ssim_row_matches_the_eval_suites_ssim_scorer(tmp_path: Path) -> None:
    manifest = generate_benchmark(tmp_path, 3, seed=2, critiques_per_pair=1)
    records = read_manifest(manifest.parent / "pairs.jsonl").records
    expected = [row[0] for row in FullReferenceScorer("ssim").score(records).scores]
    values = load_script().ssim_scores(records)
    assert values.shape == (len(records), 3)
    assert values[:, 0].tolist() == pytest.approx(expected, abs=1e-6)
    assert len(set(expected)) > 1  # distinct edits, distinct SSIM: the comparison is not vacuous
