"""Loggers: W&B that goes offline by itself when no API key is configured, and artifacts logged to it."""

from __future__ import annotations

import netrc
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger


def wandb_credentials_available() -> bool:
    """True when an API key is set in the environment or stored by `wandb login`."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode() -> str:
    """WANDB_MODE when set, else "online" with credentials and "offline" without (files to `wandb sync`)."""
    return os.environ.get("WANDB_MODE") or ("online" if wandb_credentials_available() else "offline")


class AutoWandbLogger(WandbLogger):
    """WandbLogger that runs offline (files under save_dir, `wandb sync` later) without credentials.

    WANDB_MODE, when set, wins over the automatic choice. The run's name defaults to the name of
    its folder (`runs/rm-tiny` -> "rm-tiny"), so a config names its run directory once.
    """

    def __init__(
        self, project: str = "ie-eval", save_dir: str = "runs", offline: bool | None = None, name: str | None = None,
        **kwargs,
    ) -> None:
        # `offline` is explicit (None = decide here): LightningCLI fills **kwargs with the
        # parent's defaults, so a setdefault on kwargs would never fire.
        if offline is None:
            offline = wandb_mode() in ("offline", "disabled")
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        if offline:
            kwargs["mode"] = "offline"  # wandb.init still asks for a key unless its own mode says offline
        name = name or Path(save_dir).resolve().name
        super().__init__(project=project, save_dir=save_dir, offline=offline, name=name, **kwargs)


def wandb_runs(trainer: L.Trainer) -> list[Any]:
    """The W&B runs of the trainer's WandbLoggers (none without one)."""
    return [logger.experiment for logger in trainer.loggers if isinstance(logger, WandbLogger)]


def artifact_name(prefix: str, run: Any) -> str:
    """`<prefix>-<run name>` in the characters W&B allows in an artifact name (as Lightning's `model-<run id>`)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{prefix}-{run.name or run.id}")


def log_files_artifact(
    run: Any, name: str, kind: str, paths: Iterable[str | Path], metadata: Mapping[str, Any] | None = None,
    aliases: Sequence[str] = ("latest",),
) -> Any:
    """Log files and directories (their contents at the artifact's root) as one W&B artifact of type `kind`.

    Offline, W&B copies the files into its staging folder and `wandb sync` uploads them later, so the
    files may change or go after this returns. Returns the logged `wandb.Artifact`."""
    import wandb

    artifact = wandb.Artifact(name, type=kind, metadata=dict(metadata or {}))
    for path in map(Path, paths):
        if path.is_dir():
            artifact.add_dir(str(path))
        else:
            artifact.add_file(str(path), name=path.name)
    return run.log_artifact(artifact, aliases=list(aliases))
