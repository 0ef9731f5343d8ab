"""`ie-eval eval --wandb-project` logs its results as a W&B "evaluation" artifact (offline here, never online)."""

from wandb_records import logged_artifacts

from ie_eval.cli import main as cli_main


def run_eval(out, synth_manifest, *extra):
    return cli_main(["eval", "--scorer", "psnr", "--bench", f"synth:{synth_manifest.parent}", "--out", str(out),
                     "--limit", "4", "--bootstrap", "10", *extra])


def test_eval_results_are_logged_as_an_evaluation_artifact(tmp_path, synth_manifest, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_DIR", raising=False)  # the run then lives under --out
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))  # where offline artifacts are staged
    out = tmp_path / "psnr-test"
    assert run_eval(out, synth_manifest, "--wandb-project", "ie-eval-tests") == 0
    (artifact,) = logged_artifacts(out)
    assert (artifact.name, artifact.type) == ("eval-psnr-test", "evaluation")
    logged = {entry.path: entry.local_path for entry in artifact.manifest.contents}
    assert {"results.json", "results.md"} <= set(logged)
    for name in ("results.json", "results.md"):  # the staged copies are what `wandb sync` uploads
        assert open(logged[name], "rb").read() == (out / name).read_bytes(), name


def test_eval_without_a_project_leaves_no_wandb_run(tmp_path, synth_manifest):
    assert run_eval(tmp_path / "out", synth_manifest) == 0
    assert not (tmp_path / "out" / "wandb").exists()
