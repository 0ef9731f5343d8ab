"""Pieces the training LightningModules share: config coercion and the scoring-stage base class."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any, TypeVar

import lightning as L

from ie_eval.data.collate import InputBudget
from ie_eval.lit.optim import OptimConfig, build_optimizer, split_vision

ConfigT = TypeVar("ConfigT")


def as_config(cls: type[ConfigT], value: ConfigT | dict | None) -> ConfigT:
    """A dataclass config from itself, a dict (checkpoint hparams) or None (defaults)."""
    if value is None:
        return cls()
    return value if isinstance(value, cls) else cls(**value)


def plain(value: Any) -> Any:
    """Dataclasses -> dicts, so checkpoints hold only plain types (loadable with weights_only)."""
    return asdict(value) if is_dataclass(value) else value


def hyperparameters(**values: Any) -> dict[str, Any]:
    """What a module saves as hyperparameters: its (coerced) config dataclasses as dicts, sequences as
    lists, the rest as given, so a checkpoint reloads with `weights_only=True` and W&B shows every value."""
    return {name: list(value) if isinstance(value, tuple) else plain(value) for name, value in values.items()}


class ScoringStageModule(L.LightningModule):
    """What RE-Reward and critic-SFT training share: the wrapped model's processor and prompt suffix
    (the DataModule's collator reads them), the collator budget recorded in the model so its export
    carries it, validation / test wired to `evaluate` with one metric collection per stage, and
    AdamW + warmup-cosine over backbone, head and vision tower.

    A subclass sets `model`, `optim_config`, `val_metrics` / `test_metrics` (torchmetrics with
    `compute` / `reset`) and implements `evaluate(batch, batch_idx, stage, metrics)`.
    """

    model: Any
    optim_config: OptimConfig
    progress_metrics: tuple[str, ...] = ("mean_srcc",)

    @property
    def processor(self) -> Any:
        return self.model.processor

    @property
    def prompt_suffix(self) -> str:
        return self.model.prompt_suffix

    def on_fit_start(self) -> None:
        hparams = getattr(getattr(self.trainer, "datamodule", None), "hparams", {})
        self.model.input_budget = {k: int(hparams[k]) for k in InputBudget.__dataclass_fields__ if k in hparams}

    def evaluate(self, batch: dict[str, Any], batch_idx: int, stage: str, metrics: Any) -> None:
        raise NotImplementedError

    def log_metrics(self, stage: str, metrics: Any) -> None:
        for name, value in metrics.compute().items():
            self.log(f"{stage}/{name}", value.float(), prog_bar=name in self.progress_metrics)
        metrics.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.evaluate(batch, batch_idx, "val", self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self.log_metrics("val", self.val_metrics)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.evaluate(batch, batch_idx, "test", self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self.log_metrics("test", self.test_metrics)

    def total_steps(self) -> int:
        """Optimizer steps of the run (the cosine schedule's length)."""
        return int(self.trainer.estimated_stepping_batches)

    def configure_optimizers(self) -> dict:
        language, vision = split_vision(self.model.backbone.named_parameters())
        return build_optimizer(language, self.model.head.parameters(), self.optim_config, self.total_steps(),
                               vision_params=vision)
