"""Evaluation fixtures: `ie-eval eval` runs of classical scorers on the session's synthetic benchmark."""

import pytest

from ie_eval.cli import main as cli_main


def run_eval(scorer: str, bench: str, out, *extra: str) -> None:
    assert cli_main(["eval", "--scorer", scorer, "--bench", bench, "--out", str(out), "--bootstrap", "50", *extra]) == 0


@pytest.fixture(scope="session")
def eval_cli():
    """run(scorer, bench, out, *extra_flags): `ie-eval eval` in-process, 50 bootstrap resamples."""
    return run_eval


@pytest.fixture(scope="session")
def synth_bench(synth_manifest) -> str:
    return f"synth:{synth_manifest.parent}"


@pytest.fixture(scope="session")
def classical_runs(synth_bench, tmp_path_factory) -> dict:
    """{name: out dir} of `ie-eval eval` with gmsd and psnr on 32 pairs / 32 groups of the synthetic set."""
    root = tmp_path_factory.mktemp("eval")
    runs = {}
    for scorer in ("gmsd", "psnr"):
        run_eval(scorer, synth_bench, root / scorer, "--limit", "32")
        runs[scorer] = root / scorer
    return runs
