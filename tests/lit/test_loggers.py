"""The W&B logger goes offline by itself when no API key is configured."""

from ie_eval.lit.loggers import AutoWandbLogger


def test_wandb_logger_runs_offline_without_credentials(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    logger = AutoWandbLogger(save_dir=str(tmp_path / "runs"), name="t")
    logger.log_metrics({"x": 1.0}, step=0)
    assert logger.experiment.settings.mode == "offline"
    logger.experiment.finish()
    assert list((tmp_path / "runs" / "wandb").glob("offline-run-*"))


def test_wandb_logger_from_lightning_cli_config_runs_offline(tmp_path, monkeypatch):
    """Through jsonargparse, as `ie-eval fit` builds it (it fills the parent's defaults in)."""
    from jsonargparse import ArgumentParser
    from lightning.pytorch.cli import LightningCLI  # noqa: F401  (jsonargparse signatures)

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    parser = ArgumentParser()
    parser.add_class_arguments(AutoWandbLogger, "logger")
    config = parser.parse_args(["--logger.save_dir", str(tmp_path / "runs"), "--logger.name", "t"])
    logger = parser.instantiate_classes(config).logger
    assert logger.experiment.settings.mode == "offline"
    logger.experiment.finish()
