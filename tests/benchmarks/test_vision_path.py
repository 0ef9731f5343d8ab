"""The vision-path diagnostic runs end to end on a tiny synthetic set and writes its table."""

import importlib.util
import json
import math
from pathlib import Path

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
