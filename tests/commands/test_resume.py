"""`ie-eval score` / `eval` / `critique` append rows as batches finish; a rerun after an interruption skips the
rows already written and ends with what an uninterrupted run writes."""

import json

import pytest

from ie_eval.cli import main as cli_main
from ie_eval.commands.outputs import OutputExistsError, partial_path, read_complete_lines
from ie_eval.data.readers import read_manifest
from ie_eval.data.writers import write_manifest
from ie_eval.eval.scorers import FullReferenceScorer
from ie_eval.models.critic import CriticModel
from ie_eval.serve.scoring import RewardScoring


class Interrupted(RuntimeError):
    """What the patched step raises in place of a kill."""


@pytest.fixture(scope="module")
def small_manifest(synth_manifest, tmp_path_factory):
    """The first 8 rows of the synthetic manifest."""
    return write_manifest(read_manifest(synth_manifest).records[:8], tmp_path_factory.mktemp("small") / "m.jsonl")


def counting(monkeypatch, owner, name, fail_on_call=None):
    """Wrap `owner.name(self, records_or_batch, ...)`: returns the list of sizes it was called with;
    raises Interrupted on call number `fail_on_call` (1-based) instead of running it."""
    sizes = []
    real = getattr(owner, name)

    def wrapped(self, items, *args, **kwargs):
        if fail_on_call is not None and len(sizes) + 1 == fail_on_call:
            raise Interrupted("killed")
        size = len(items["sample_ids"]) if isinstance(items, dict) else len(items)
        sizes.append(size)
        return real(self, items, *args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)
    return sizes


def score_args(models, manifest, out):
    return ["score", "--ckpt", str(models["rm"]), "--manifest", str(manifest), "--out", str(out), "--batch-size", "3"]


def cut_last_row_in_half(path):
    text = path.read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[-1]
    path.write_text(text[: len(text) - len(last) // 2 - 1])  # what a kill mid-write leaves: no newline


def test_an_interrupted_score_resumes_without_rescoring_and_matches_an_uninterrupted_run(models, small_manifest,
                                                                                         tmp_path, monkeypatch):
    assert cli_main(score_args(models, small_manifest, tmp_path / "whole.jsonl")) == 0
    with monkeypatch.context() as patch:
        counting(patch, RewardScoring, "score_batch", fail_on_call=3)  # batches of 3: 6 of 8 rows written
        with pytest.raises(Interrupted):
            cli_main(score_args(models, small_manifest, tmp_path / "out.jsonl"))
    assert not (tmp_path / "out.jsonl").exists()
    rows, _ = read_complete_lines(partial_path(tmp_path / "out.jsonl"))
    assert len(rows) == 1 + 6  # the run line, then the rows of the two finished batches
    sizes = counting(monkeypatch, RewardScoring, "score_batch")
    assert cli_main(score_args(models, small_manifest, tmp_path / "out.jsonl")) == 0
    assert sum(sizes) == 2
    assert (tmp_path / "out.jsonl").read_text() == (tmp_path / "whole.jsonl").read_text()
    assert not partial_path(tmp_path / "out.jsonl").exists()


def test_a_last_row_cut_short_is_dropped_with_a_warning_and_scored_again(models, small_manifest, tmp_path,
                                                                          monkeypatch, caplog):
    assert cli_main(score_args(models, small_manifest, tmp_path / "whole.jsonl")) == 0
    with monkeypatch.context() as patch:
        counting(patch, RewardScoring, "score_batch", fail_on_call=3)
        with pytest.raises(Interrupted):
            cli_main(score_args(models, small_manifest, tmp_path / "out.jsonl"))
    cut_last_row_in_half(partial_path(tmp_path / "out.jsonl"))
    sizes = counting(monkeypatch, RewardScoring, "score_batch")
    assert cli_main(score_args(models, small_manifest, tmp_path / "out.jsonl")) == 0
    assert "dropped a last line cut short" in caplog.text
    assert sum(sizes) == 3
    got, expected = (read_complete_lines(tmp_path / name)[0] for name in ("out.jsonl", "whole.jsonl"))
    assert [r["sample_id"] for r in got] == [r["sample_id"] for r in expected]
    for row, other in zip(got, expected, strict=True):  # the row scored again sat in another batch: its padding
        assert row == pytest.approx(other, abs=1e-6)


def test_a_partial_run_with_other_arguments_is_refused_not_mixed_in(models, small_manifest, tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        counting(patch, RewardScoring, "score_batch", fail_on_call=2)
        with pytest.raises(Interrupted):
            cli_main(score_args(models, small_manifest, tmp_path / "out.jsonl"))
    with pytest.raises(OutputExistsError, match=r"out.jsonl.partial: an interrupted run with other arguments"):
        cli_main([*score_args(models, small_manifest, tmp_path / "out.jsonl"), "--max-pixels", "2048"])
    sizes = counting(monkeypatch, RewardScoring, "score_batch")
    assert cli_main([*score_args(models, small_manifest, tmp_path / "out.jsonl"), "--overwrite"]) == 0
    assert sum(sizes) == 8  # --overwrite starts over


def eval_args(synth_manifest, out):
    return ["eval", "--scorer", "psnr", "--bench", f"synth:{synth_manifest.parent}", "--out", str(out),
            "--limit", "6", "--bootstrap", "10", "--batch-size", "4"]


def without_timing(results_path):
    results = json.loads(results_path.read_text())
    results.pop("timing")
    return results


def test_an_interrupted_eval_resumes_without_rescoring_and_matches_an_uninterrupted_run(synth_manifest, tmp_path,
                                                                                        monkeypatch):
    whole, out = tmp_path / "whole", tmp_path / "out"
    total = counting(monkeypatch, FullReferenceScorer, "score")
    assert cli_main(eval_args(synth_manifest, whole)) == 0
    monkeypatch.undo()
    with monkeypatch.context() as patch:
        written = counting(patch, FullReferenceScorer, "score", fail_on_call=3)
        with pytest.raises(Interrupted):
            cli_main(eval_args(synth_manifest, out))
    assert not (out / "results.json").exists() and not (out / "predictions.jsonl").exists()
    sizes = counting(monkeypatch, FullReferenceScorer, "score")
    assert cli_main(eval_args(synth_manifest, out)) == 0
    assert sum(sizes) == sum(total) - sum(written) and sum(written) == 8
    assert without_timing(out / "results.json") == without_timing(whole / "results.json")
    assert json.loads((out / "results.json").read_text())["timing"]["resumed_records"] == 8
    assert (out / "predictions.jsonl").read_text() == (whole / "predictions.jsonl").read_text()
    assert not partial_path(out / "predictions.jsonl").exists()


def critique_args(models, synth_manifest, out):
    return ["critique", "--ckpt", str(models["critic"]), "--manifest", str(synth_manifest), "--out", str(out),
            "--limit", "4", "--batch-size", "2", "--max-new-tokens", "4"]


def without_run_facts(metrics_path):
    metrics = json.loads(metrics_path.read_text())
    return {k: v for k, v in metrics.items() if k not in ("seconds", "resumed_pairs")}


def test_an_interrupted_critique_resumes_without_regenerating_and_matches_an_uninterrupted_run(
        models, synth_manifest, tmp_path, monkeypatch):
    whole, out = tmp_path / "whole.jsonl", tmp_path / "out.jsonl"
    assert cli_main(critique_args(models, synth_manifest, whole)) == 0
    with monkeypatch.context() as patch:
        counting(patch, CriticModel, "critique", fail_on_call=2)  # the first batch of 2 written
        with pytest.raises(Interrupted):
            cli_main(critique_args(models, synth_manifest, out))
    sizes = counting(monkeypatch, CriticModel, "critique")
    assert cli_main(critique_args(models, synth_manifest, out)) == 0
    assert sizes == [2]
    assert out.read_text() == whole.read_text()
    metrics = out.with_suffix(".metrics.json")
    assert without_run_facts(metrics) == without_run_facts(whole.with_suffix(".metrics.json"))
    assert json.loads(metrics.read_text())["resumed_pairs"] == 2


def test_a_damaged_row_before_the_last_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "rows.jsonl.partial"
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(ValueError, match=r"rows.jsonl.partial:2: not a JSON row"):
        read_complete_lines(path)
