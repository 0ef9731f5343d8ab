"""Training runs: a rerun into an earlier run's directory refuses unless --overwrite, resuming is allowed,
and the export is logged as a W&B "model" artifact (offline here, never online)."""

import pytest
from wandb_records import logged_artifacts

from ie_eval.cli import main as cli_main
from ie_eval.commands.demo import main as demo_main
from ie_eval.commands.fit import build_cli
from ie_eval.commands.outputs import OutputExistsError

FAST = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--data.init_args.batch_size", "4", "--data.init_args.eval_batch_size", "8"]


@pytest.fixture(scope="module", autouse=True)
def offline_wandb(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_DATA_DIR", str(tmp_path_factory.mktemp("wandb-data")))  # offline artifact staging
        yield


def fit(args):
    """`ie-eval fit ARGS` as cli.main runs it; the W&B run is finished so its file can be read back."""
    cli = build_cli(["fit", *args])
    cli.trainer.logger.experiment.finish()
    return cli


@pytest.fixture(scope="module")
def first_run(synth_manifest, tmp_path_factory):
    """(run dir, the fit's arguments): tiny RE-Reward fitted once, W&B logger on (configs/rm/tiny.yaml)."""
    root = tmp_path_factory.mktemp("rm-run")
    args = ["--config", "configs/rm/tiny.yaml", "--data.init_args.manifest", str(synth_manifest),
            "--trainer.default_root_dir", str(root), *FAST]
    fit(args)
    return root, args


def test_the_export_is_logged_as_a_wandb_model_artifact(first_run):
    root, _ = first_run
    artifact = next(a for a in logged_artifacts(root) if a.type == "model")
    assert artifact.name == f"model-{root.name}"  # AutoWandbLogger names the run after its folder
    assert {"latest", "best"} <= set(artifact.aliases)
    exported = {p.relative_to(root / "export").as_posix() for p in (root / "export").rglob("*") if p.is_file()}
    assert {entry.path for entry in artifact.manifest.contents} == exported
    assert '"best_checkpoint":' in artifact.metadata and "best-epoch00.ckpt" in artifact.metadata


def test_a_second_fit_into_the_run_dir_refuses_naming_it(first_run):
    root, args = first_run
    with pytest.raises(OutputExistsError) as refused:
        cli_main(["fit", *args])
    message = str(refused.value)
    assert str(root) in message and str(root / "export") in message
    assert "--overwrite" in message and "--ckpt_path" in message


def test_a_driver_that_fits_itself_is_refused_too_unless_it_resumes(first_run):
    root, args = first_run
    with pytest.raises(OutputExistsError, match="--overwrite"):
        build_cli([*args, "--trainer.logger", "false"], run=False)
    cli = build_cli([*args, "--trainer.logger", "false"], run=False, resume=True)  # grpo --ckpt-path does this
    assert str(cli.trainer.default_root_dir) == str(root)


def test_resuming_from_a_checkpoint_is_not_an_overwrite(first_run):
    root, args = first_run
    cli = fit([*args, "--trainer.max_epochs", "2", "--ckpt_path", str(root / "checkpoints" / "last.ckpt")])
    assert cli.trainer.current_epoch == 2 and cli.trainer.global_step == 4  # epoch 1 restored, epoch 2 trained


def test_overwrite_trains_over_the_run_and_replaces_the_export_whole(first_run):
    root, args = first_run
    stale = root / "export" / "calibration.json"  # from an `ie-eval calibrate` of the earlier model
    stale.write_text("{}")
    cli = fit([*args, "--overwrite"])
    assert cli.trainer.global_step == 2  # a fresh run, not a resumed one
    assert (root / "export" / "reward_config.json").is_file() and not stale.exists()
    assert not list(root.glob(".export*"))  # the export was swapped in, nothing half-written left


def test_demo_refuses_an_earlier_run_in_its_out(tmp_path, synth_manifest):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "reward_config.json").write_text("{}")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        demo_main(["--data", str(synth_manifest.parent), "--out", str(tmp_path)])
