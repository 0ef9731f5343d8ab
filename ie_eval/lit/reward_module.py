"""RE-Reward training: a thin LightningModule over RewardModel + RewardLoss + ScoreCorrelations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ie_eval.data.prompts import FINAL_ASSESSMENT
from ie_eval.data.records import CRITIQUE_DIMS
from ie_eval.lit.common import ScoringStageModule, as_config
from ie_eval.lit.strategies import shard_for_strategy
from ie_eval.losses.composite import RewardLoss, RewardLossConfig
from ie_eval.metrics.correlation import ScoreCorrelations
from ie_eval.models.adapters import (
    adalora_allocator_state,
    adalora_orthogonal_penalty,
    load_adalora_allocator_state,
)
from ie_eval.models.reward_model import DEFAULT_REWARD_WEIGHTS, RewardModel


class RewardModule(ScoringStageModule):
    """Fits RE-Reward: scores (logicality, accuracy, usefulness) of a critique of an edit.

    Args:
        marker: text for `marker` pooling.
        loss: see RewardLossConfig.
        reward_weights: weights of the scalar reward (serving, GRPO).
        scoring: backbone, backbone_kwargs, adapter, pooling, head, optim (see ScoringStageModule).
    """

    def __init__(
        self,
        marker: str = FINAL_ASSESSMENT,
        loss: RewardLossConfig | None = None,
        reward_weights: Sequence[float] = DEFAULT_REWARD_WEIGHTS,
        **scoring: Any,
    ) -> None:
        super().__init__(**scoring)
        self.loss_config = as_config(RewardLossConfig, loss)
        self.save_stage_hyperparameters(marker=marker, loss=self.loss_config, reward_weights=list(reward_weights))
        self.model = self.build_model(RewardModel, marker=marker, dims=CRITIQUE_DIMS, reward_weights=reward_weights)
        self.loss_fn = RewardLoss(self.loss_config, num_dims=len(CRITIQUE_DIMS))
        self.val_metrics = ScoreCorrelations(CRITIQUE_DIMS)
        self.test_metrics = ScoreCorrelations(CRITIQUE_DIMS)

    def configure_model(self) -> None:
        """Attach adapters once the run length is known (AdaLoRA schedules its rank budget on it)."""
        if self.model.adapter_config is not None:
            return
        total_steps = None
        if self.adapter_config.kind == "adalora":
            fitting = self._trainer is not None and self.trainer.state.fn == "fit"
            minimum = self.adapter_config.adalora_tinit + self.adapter_config.adalora_tfinal + 2
            total_steps = max(int(self.trainer.estimated_stepping_batches), minimum) if fitting else minimum
        self.model.attach_adapter(self.adapter_config, total_steps)
        shard_for_strategy(self, self.model)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.model(batch)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        scores = self.model(batch)
        parts = self.loss_fn(scores, batch["critique_scores"])
        loss = parts["loss"]
        orthogonal = adalora_orthogonal_penalty(self.model.backbone)
        if orthogonal is not None:
            loss = loss + self.adapter_config.adalora_orth_reg_weight * orthogonal
            parts["adalora_orth"] = orthogonal
        size = scores.shape[0]
        # sync_dist: under DDP the logged value is the mean over ranks (equal shards), not rank 0's alone.
        self.log("train/loss", loss, prog_bar=True, batch_size=size, sync_dist=True)
        self.log_dict({f"train/{k}": v for k, v in parts.items() if k != "loss"}, batch_size=size, sync_dist=True)
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        # AdaLoRA prunes ranks from gradient sensitivity: after each optimizer step, while the gradients are
        # still there. Here rather than in on_train_batch_end, which runs after the checkpoint callbacks: a
        # checkpoint of this step then already holds the allocator state this step produced.
        super().optimizer_step(*args, **kwargs)
        if self.adapter_config.kind == "adalora" and self.model.is_peft:
            self.model.backbone.base_model.update_and_allocate(self.trainer.global_step + 1)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        allocator = adalora_allocator_state(self.model.backbone) if self.model.is_peft else None
        if allocator is not None:
            checkpoint["adalora_allocator"] = allocator

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "adalora_allocator" in checkpoint and self.model.is_peft:
            load_adalora_allocator_state(self.model.backbone, checkpoint["adalora_allocator"])

    def evaluate(self, batch: dict[str, Any], batch_idx: int, stage: str, metrics: ScoreCorrelations) -> None:
        scores = self.model(batch)
        parts = self.loss_fn(scores, batch["critique_scores"])
        self.log(f"{stage}/loss", parts["loss"], batch_size=scores.shape[0], sync_dist=True)
        metrics.update(scores, batch["critique_scores"])

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        scores = self.model(batch)
        return {
            "sample_ids": batch["sample_ids"],
            "scores": scores.float().cpu(),
            "reward": self.model.weighted_reward(scores).cpu(),
            "target": batch["critique_scores"].cpu(),
        }
