"""Loggers: W&B that goes offline by itself when no API key is configured."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from lightning.pytorch.loggers import WandbLogger


def wandb_credentials_available() -> bool:
    """True when an API key is set in the environment or stored by `wandb login`."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


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
            mode = os.environ.get("WANDB_MODE")
            offline = mode in ("offline", "disabled") if mode else not wandb_credentials_available()
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        if offline:
            kwargs["mode"] = "offline"  # wandb.init still asks for a key unless its own mode says offline
        name = name or Path(save_dir).resolve().name
        super().__init__(project=project, save_dir=save_dir, offline=offline, name=name, **kwargs)
