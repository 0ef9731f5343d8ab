"""The result-writing commands refuse an earlier run's output unless --overwrite; bars never change results."""

import json
import os

import pytest

from ie_eval.cli import main as cli_main
from ie_eval.commands.outputs import OutputExistsError
from ie_eval.data.readers import read_manifest
from ie_eval.data.writers import write_manifest
from ie_eval.progress import NO_PROGRESS_ENV

EARLIER = "an earlier run's output\n"


@pytest.fixture(scope="module")
def small_manifest(synth_manifest, tmp_path_factory):
    """The first 6 rows of the synthetic manifest (scoring all of it would take most of a test's time)."""
    return write_manifest(read_manifest(synth_manifest).records[:6], tmp_path_factory.mktemp("small") / "m.jsonl")


@pytest.fixture
def edits_csv(tmp_path, image_pair_factory):
    source, edited = image_pair_factory("p0")
    path = tmp_path / "edits.csv"
    path.write_text(f"source,edited,instruction\n{source},{edited},make the circle blue\n")
    return path


def command(name, out, models, synth_manifest, edits_csv, small=None):
    """Cheapest real arguments of each command, writing to `out` (`small`: the manifest `score` reads)."""
    manifest = str(synth_manifest)
    return {
        "score": ["score", "--ckpt", str(models["rm"]), "--manifest", str(small), "--out", str(out)],
        "critique": ["critique", "--ckpt", str(models["critic"]), "--manifest", manifest, "--out", str(out),
                     "--limit", "2", "--max-new-tokens", "4"],
        "infer": ["infer", "--ckpt", str(models["critic"]), "--csv", str(edits_csv), "--out", str(out),
                  "--mode", "score_only"],
        "eval": ["eval", "--scorer", "psnr", "--bench", f"synth:{synth_manifest.parent}", "--out", str(out),
                 "--limit", "4", "--bootstrap", "10"],
    }[name]


def earlier_output(name, tmp_path):
    """(--out value, the file an earlier run left there)."""
    if name == "eval":
        (tmp_path / "out").mkdir()
        return tmp_path / "out", tmp_path / "out" / "results.json"
    return tmp_path / "out.file", tmp_path / "out.file"


@pytest.mark.parametrize("name", ["score", "critique", "infer", "eval"])
def test_a_rerun_into_an_earlier_output_refuses_naming_it_and_the_flag(name, tmp_path, models, synth_manifest,
                                                                        edits_csv, small_manifest):
    out, left = earlier_output(name, tmp_path)
    left.write_text(EARLIER)
    with pytest.raises(OutputExistsError, match="--overwrite") as refused:
        cli_main(command(name, out, models, synth_manifest, edits_csv, small_manifest))
    assert str(left) in str(refused.value)
    assert left.read_text() == EARLIER  # refused before writing anything


@pytest.mark.parametrize("name", ["score", "critique", "infer", "eval"])
def test_overwrite_replaces_an_earlier_output(name, tmp_path, models, synth_manifest, edits_csv, small_manifest):
    out, left = earlier_output(name, tmp_path)
    left.write_text(EARLIER)
    assert cli_main([*command(name, out, models, synth_manifest, edits_csv, small_manifest), "--overwrite"]) == 0
    assert left.read_text() != EARLIER and left.stat().st_size > 0


def test_no_progress_turns_every_bar_off_for_the_process(tmp_path, models, synth_manifest, edits_csv, monkeypatch,
                                                         capsys):
    monkeypatch.delenv(NO_PROGRESS_ENV, raising=False)  # monkeypatch unsets it again after the command sets it
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws on stderr as on a terminal
    assert cli_main([*command("eval", tmp_path / "out", models, synth_manifest, edits_csv), "--no-progress"]) == 0
    assert "scoring psnr" not in capsys.readouterr().err
    assert os.environ[NO_PROGRESS_ENV] == "1"  # so the loops deep in the readers and subprocesses see it too


def test_progress_bars_on_a_terminal_leave_the_results_unchanged(tmp_path, models, synth_manifest, edits_csv,
                                                                  monkeypatch, capsys):
    monkeypatch.delenv(NO_PROGRESS_ENV, raising=False)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws on stderr as on a terminal
    assert cli_main(command("eval", tmp_path / "bars", models, synth_manifest, edits_csv)) == 0
    drawn = capsys.readouterr().err
    assert "scoring psnr" in drawn and "checking images of manifest.jsonl" in drawn
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    assert cli_main(command("eval", tmp_path / "plain", models, synth_manifest, edits_csv)) == 0
    assert "scoring psnr" not in capsys.readouterr().err
    bars, plain = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("bars", "plain"))
    assert bars["pointwise"] == plain["pointwise"]
    assert (tmp_path / "bars" / "predictions.jsonl").read_text() == (tmp_path / "plain" / "predictions.jsonl").read_text()
