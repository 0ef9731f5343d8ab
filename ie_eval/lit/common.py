"""Pieces the training LightningModules share: config coercion and the scoring-stage base class."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any, TypeVar

import lightning as L

from ie_eval.data.collate import InputBudget
from ie_eval.lit.optim import OptimConfig, build_optimizer, split_vision
from ie_eval.models.adapters import AdapterConfig
from ie_eval.models.heads import HeadConfig

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

    Args (shared by both stages; a subclass passes them on as ``**scoring``):
        backbone: tiny preset name, hub id or local path.
        backbone_kwargs: dtype, attn_implementation, gradient_checkpointing, seed, preset overrides.
        adapter / head / optim: see the config dataclasses.
        pooling: which hidden state the head reads (see `models.pooling`).

    A subclass builds `model` with `build_model`, saves its hyperparameters with
    `save_stage_hyperparameters`, sets `val_metrics` / `test_metrics` (torchmetrics with
    `compute` / `reset`) and implements `evaluate(batch, batch_idx, stage, metrics)`.
    """

    model: Any
    progress_metrics: tuple[str, ...] = ("mean_srcc",)

    def __init__(
        self,
        *,
        backbone: str = "tiny-qwen3.5",  # read by models/backbone.py `load_backbone`
        backbone_kwargs: dict | None = None,  # allow-listed there too
        adapter: AdapterConfig | None = None,  # models/adapters.py, attached in `configure_model`
        pooling: str = "prefill",  # models/pooling.py `Pooler`
        head: HeadConfig | None = None,  # models/heads.py
        optim: OptimConfig | None = None,  # lit/optim.py, in `configure_optimizers`
    ) -> None:
        super().__init__()
        self.backbone_name, self.backbone_kwargs, self.pooling = backbone, backbone_kwargs, pooling
        self.adapter_config = as_config(AdapterConfig, adapter)
        self.head_config = as_config(HeadConfig, head)
        self.optim_config = as_config(OptimConfig, optim)

    def save_stage_hyperparameters(self, **stage: Any) -> None:
        """Save the shared arguments and the stage's own (`stage`) as checkpoint / W&B hyperparameters."""
        self.save_hyperparameters(hyperparameters(
            backbone=self.backbone_name, backbone_kwargs=self.backbone_kwargs, adapter=self.adapter_config,
            pooling=self.pooling, head=self.head_config, optim=self.optim_config, **stage,
        ))

    def build_model(self, model_class: Any, **model_kwargs: Any) -> Any:
        """`model_class.build` on the shared backbone, adapter, pooling and head (`model_kwargs`: the rest).

        The DataModule's collator reads `processor` and `prompt_suffix` off the module."""
        model = model_class.build(
            self.backbone_name, self.backbone_kwargs, adapter=self.adapter_config, pooling=self.pooling,
            head=self.head_config, **model_kwargs,
        )
        self.processor, self.prompt_suffix = model.processor, model.prompt_suffix
        return model

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
