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
