"""Callbacks: export the best checkpoint as a pickle-free pretrained directory."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from ie_eval.lit.loggers import artifact_name, log_files_artifact, wandb_runs
from ie_eval.lit.strategies import gather_full_state, shards_parameters, unsharded_copy

log = logging.getLogger(__name__)


def load_state_dict_safely(checkpoint_path: str | Path) -> dict[str, torch.Tensor]:
    """The `state_dict` of a Lightning checkpoint, loaded with weights_only=True (no code runs)."""
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    return checkpoint["state_dict"]


class ExportPretrained(L.Callback):
    """At the end of `fit`, writes `model.save_pretrained(dirpath)` from the best checkpoint.

    The best checkpoint is the one the run's (first) monitoring ModelCheckpoint picked; without
    one, the final weights are exported. `dirpath` defaults to `<log_dir>/export`. An earlier
    export there is replaced whole, not written over: a file only it had (a `calibration.json`
    from `ie-eval calibrate`) would otherwise be read as the new model's. With a W&B logger the
    export is also logged as a W&B artifact of type "model", `model-<run name>`, aliased
    "latest" (and "best" when it is the best checkpoint's).
    """

    def __init__(self, dirpath: str | None = None) -> None:
        self.dirpath = dirpath

    def target(self, trainer: L.Trainer) -> Path:
        return Path(self.dirpath or Path(trainer.log_dir or trainer.default_root_dir) / "export")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        monitor = next(
            (c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint) and c.monitor and c.best_model_path),
            None,
        )
        best = monitor.best_model_path if monitor is not None else ""
        if shards_parameters(trainer.strategy):
            # Each rank holds a slice of the weights: export from a whole copy on rank 0, built from the best
            # checkpoint (Lightning writes it whole: fsdp.yaml sets save_distributed_checkpoint false) or, without
            # one, from the shards gathered by every rank.
            state = load_state_dict_safely(best) if best else gather_full_state(pl_module, trainer.strategy)
            if trainer.is_global_zero:
                self.export(trainer, unsharded_copy(pl_module, state), monitor, best, load_best=False)
            return
        if trainer.is_global_zero:
            self.export(trainer, pl_module, monitor, best)

    def export(self, trainer: L.Trainer, pl_module: L.LightningModule, monitor: ModelCheckpoint | None, best: str,
               load_best: bool = True) -> None:
        """Write `pl_module`'s export and log it to W&B. With `load_best`, the `best` checkpoint's weights
        are loaded in for it and the module's own put back after (else it holds what to export already)."""
        target = self.target(trainer)
        final_state = None
        if best and load_best:
            final_state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            pl_module.load_state_dict(load_state_dict_safely(best))
        # A module may export differently from its model (GRPO merges its adapter first). Every export is
        # written beside the target and swapped in whole (`models.export.atomic_export`).
        export = getattr(pl_module, "export_pretrained", None) or pl_module.model.save_pretrained
        export(target)
        if final_state is not None:
            pl_module.load_state_dict(final_state)
        log.info("exported %s to %s", best or "final weights", target)
        self.export_path = target
        metadata = {"best_checkpoint": best or None, "global_step": int(trainer.global_step), "export": str(target)}
        if monitor is not None and monitor.best_model_score is not None:
            metadata |= {"monitor": monitor.monitor, "best_score": float(monitor.best_model_score)}
        for run in wandb_runs(trainer):
            log_files_artifact(run, artifact_name("model", run), "model", [target], metadata,
                               aliases=["latest", "best"] if best else ["latest"])
