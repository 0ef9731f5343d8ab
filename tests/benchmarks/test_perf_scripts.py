"""The performance benchmarks run end to end at toy sizes (each checks its paths agree before timing),
and the bundled real-size architectures are valid preset overrides of the sizes they claim."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ie_eval.models.tiny_presets import get_preset, tiny_config
from ie_eval.models.tokenizer_offline import build_offline_tokenizer

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run(script: str, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / f"{script}.json"
    done = subprocess.run([sys.executable, str(BENCHMARKS / f"{script}.py"), *args, "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=BENCHMARKS.parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| " in done.stdout  # the table
    return json.loads(out.read_text())


def test_linear_ce_benchmark(tmp_path):
    result = run("linear_ce", tmp_path, "--tokens", "64", "--hidden", "32", "--vocab", "5000", "--chunk", "16",
                 "--repeats", "1")
    assert result["agreement_relative"] < 1e-4
    assert {row["head"] for row in result["rows"]} == {"frozen", "trained"}
    assert all(row["plain_peak_mb"] > 0 and row["time_ratio"] > 0 for row in result["rows"])


def test_rollouts_benchmark(tmp_path):
    result = run("rollouts", tmp_path, "--presets", "tiny-qwen3-vl", "--prompts", "2", "--image-sides", "64",
                 "--new-tokens", "4", "--repeats", "1")
    (row,) = result["rows"]
    assert row["group_size"] == 8 and row["new_tokens"] > 0 and row["speedup"] > 0


def test_score_only_benchmark(tmp_path):
    result = run("score_only", tmp_path, "--architectures", "tiny-qwen3-vl", "--samples", "2", "--batch-size", "2",
                 "--image-side", "64", "--repeats", "1", "--critiques-per-edit", "1", "2")
    distinct, grouped = result["rows"]
    assert distinct["max_abs_difference"] < 1e-4 and distinct["speedup"] > 0 and "shared_speedup" not in distinct
    assert grouped["critiques_per_edit"] == 2 and grouped["max_abs_difference"] < 1e-4 and grouped["shared_speedup"] > 0


@pytest.mark.parametrize("name", ["qwen3.5-0.8b", "qwen3.5-4b", "qwen3.5-9b"])
def test_bundled_architectures_are_valid_overrides(name):
    spec = json.loads((BENCHMARKS / "architectures" / f"{name}.json").read_text())
    preset = get_preset(spec["preset"], **{k: tuple(v) if isinstance(v, list) else v
                                           for k, v in spec["overrides"].items()})
    config = tiny_config(preset, build_offline_tokenizer(preset.family, preset.tokenizer)).get_text_config()
    assert config.vocab_size == 248320
    assert len(config.layer_types) == config.num_hidden_layers and config.hidden_size >= 1024


def test_grpo_step_benchmark_against_trl(tmp_path):
    result = run("grpo_step", tmp_path, "--prompts-per-step", "1", "--group", "2", "--new-tokens", "4",
                 "--image-side", "256", "--steps", "2", "--warmup", "1")
    assert set(result["rows"]) == {"ours", "trl"} and result["ratio"] > 0
    assert set(result["rows"]["ours"]["split_s"]) == {"generate", "score", "update"}


@pytest.mark.parametrize("adapter", ["full", "lora"])
def test_sft_step_benchmark(tmp_path, adapter):
    result = run("sft_step", tmp_path, "--vocab", "2000", "--hidden", "32", "--layers", "2", "--batch", "2",
                 "--repeats", "1", "--adapter", adapter)
    assert abs(result["losses"]["ours"] - result["losses"]["plain"]) < 1e-4 * max(1.0, result["losses"]["plain"])
    assert {row["path"] for row in result["rows"]} == {"ours", "plain"}
    assert all(row["tokens_per_s"] > 0 and row["critique_tokens"] > 0 for row in result["rows"])


def test_linear_logprobs_benchmark(tmp_path):
    result = run("linear_ce", tmp_path, "--tokens", "64", "--hidden", "32", "--vocab", "5000", "--chunk", "16",
                 "--repeats", "1", "--objective", "logprobs")
    assert result["benchmark"] == "linear_logprobs" and result["agreement_relative"] < 1e-4
    assert all(row["chunked_peak_mb"] > 0 for row in result["rows"])


def test_reward_overlap_benchmark(tmp_path):
    result = run("reward_overlap", tmp_path, "--prompts-per-step", "2", "--group", "2", "--new-tokens", "4",
                 "--steps", "2", "--rounds", "1")
    assert set(result["rows"]) == {"serial", "overlapped"} and result["speedup"] > 0
    assert all(row["rollouts_per_s"] > 0 for row in result["rows"].values())


def test_reward_step_benchmark(tmp_path):
    result = run("reward_step", tmp_path, "--vocab", "2000", "--hidden", "32", "--layers", "2", "--batch", "2",
                 "--repeats", "1")
    assert abs(result["losses"]["ours"] - result["losses"]["plain"]) < 1e-4 * max(1.0, result["losses"]["plain"])
    assert {row["path"] for row in result["rows"]} == {"ours", "plain"} and result["speedup"] > 0


def test_length_buckets_benchmark(tmp_path):
    result = run("length_buckets", tmp_path, "--batch", "4", "--hidden", "32", "--layers", "2", "--sources", "4",
                 "--rounds", "1")
    rows = result["rows"]
    assert rows["bucketed"]["padded_tokens"] < rows["uniform"]["padded_tokens"]
    assert result["scoring_rows"]["length-sorted"]["padded_tokens"] < result["scoring_rows"]["dataset order"]["padded_tokens"]


def test_every_flag_the_gpu_suite_passes_is_one_its_benchmark_takes():
    """The suite runs once, on a rare GPU: a renamed flag must fail here, not there."""
    import re

    text = (BENCHMARKS / "gpu_suite.sh").read_text().replace("\\\n", " ")
    commands = re.findall(r"benchmarks/(\w+)\.py([^\n]*)", text)
    assert {name for name, _ in commands} >= {"linear_ce", "score_only", "rollouts", "sft_step", "grpo_step"}
    scripts = sorted({str(BENCHMARKS / f"{name}.py") for name, _ in commands})
    # One process prints every script's --help (each would otherwise import torch on its own).
    done = subprocess.run([sys.executable, "-c", HELP_OF_EACH, str(BENCHMARKS), *scripts], capture_output=True,
                          text=True, timeout=300, cwd=BENCHMARKS.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    helps = json.loads(done.stdout.splitlines()[-1])
    for name, flags in commands:
        usage = helps[str(BENCHMARKS / f"{name}.py")]
        assert usage.startswith("usage:"), usage[-2000:]
        for flag in re.findall(r"(--[\w-]+)", flags):
            assert flag in usage, f"gpu_suite.sh passes {flag} to {name}.py, which does not take it"


HELP_OF_EACH = """
import contextlib, io, json, runpy, sys
folder, scripts = sys.argv[1], sys.argv[2:]
sys.path.insert(0, folder)
helps = {}
for script in scripts:
    sys.argv, text = [script, "--help"], io.StringIO()
    with contextlib.redirect_stdout(text):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit:
            pass
    helps[script] = text.getvalue()
print(json.dumps(helps))
"""
