"""Callbacks: export the best checkpoint as a pickle-free pretrained directory."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)


def load_state_dict_safely(checkpoint_path: str | Path) -> dict[str, torch.Tensor]:
    """The `state_dict` of a Lightning checkpoint, loaded with weights_only=True (no code runs)."""
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    return checkpoint["state_dict"]


class ExportPretrained(L.Callback):
    """At the end of `fit`, writes `model.save_pretrained(dirpath)` from the best checkpoint.

    The best checkpoint is the one the run's (first) monitoring ModelCheckpoint picked; without
    one, the final weights are exported. `dirpath` defaults to `<log_dir>/export`.
    """

    def __init__(self, dirpath: str | None = None) -> None:
        self.dirpath = dirpath

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        target = Path(self.dirpath or Path(trainer.log_dir or trainer.default_root_dir) / "export")
        best = next(
            (c.best_model_path for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint) and c.monitor and c.best_model_path),
            "",
        )
        final_state = None
        if best:
            final_state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            pl_module.load_state_dict(load_state_dict_safely(best))
        # A module may export differently from its model (GRPO merges its adapter first).
        export = getattr(pl_module, "export_pretrained", None) or pl_module.model.save_pretrained
        export(target)
        if final_state is not None:
            pl_module.load_state_dict(final_state)
        log.info("exported %s to %s", best or "final weights", target)
        self.export_path = target
