"""Pairwise preference reward model training (EditReward): a thin LightningModule over
PairwiseRewardModel + `pairwise_loss` + PairwiseMetrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from ie_eval.data.records import MOS_DIMS
from ie_eval.lit.common import ScoringStageModule, as_config
from ie_eval.lit.strategies import shard_for_strategy
from ie_eval.losses.pairwise import PairwiseLossConfig, pairwise_loss
from ie_eval.metrics.pairwise import PairwiseMetrics
from ie_eval.models.pairwise_model import PairwiseRewardModel


class PairwiseRewardModule(ScoringStageModule):
    """Fits a (mu, log sigma) head per dimension from preference pairs (`PairwiseDataModule` batches).

    Args:
        dims: the dimensions with a head (EditReward: instruction following and visual quality).
        fusion: mean | min | sum, how the heads' (mu, log sigma) make one score (EditReward: mean).
        loss: see PairwiseLossConfig (uncertainty / probit / bt / bt_ties).
        scoring: backbone, backbone_kwargs, adapter (lora / qlora / full / frozen), pooling, head, optim
            (see ScoringStageModule).
    """

    progress_metrics = ("pair_accuracy",)

    def __init__(
        self, dims: Sequence[str] = MOS_DIMS, fusion: str = "mean", loss: PairwiseLossConfig | None = None,
        **scoring: Any,
    ) -> None:
        super().__init__(**scoring)
        if self.adapter_config.kind == "adalora":
            raise ValueError("the pairwise reward model uses adapter kind lora, qlora, full or frozen, not adalora")
        self.loss_config = as_config(PairwiseLossConfig, loss)
        self.save_stage_hyperparameters(dims=list(dims), fusion=fusion, loss=self.loss_config)
        self.model = self.build_model(PairwiseRewardModel, dims=dims, fusion=fusion)
        self.val_metrics = PairwiseMetrics()
        self.test_metrics = PairwiseMetrics()

    def configure_model(self) -> None:
        self.model.attach_adapter(self.adapter_config)
        shard_for_strategy(self, self.model, forward_methods=("fused",))  # scored through `fused`, not `forward`

    def pair_scores(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, 2) fused mu and log sigma of each pair's [first, second] edit (the batch holds all firsts first)."""
        mu, log_sigma = self.model.fused(batch)
        pairs = batch["pair_label"].shape[0]
        return mu.reshape(2, pairs).T, log_sigma.reshape(2, pairs).T

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        mu, log_sigma = self.pair_scores(batch)
        loss = pairwise_loss(mu, log_sigma, batch["pair_label"], self.loss_config)
        size = mu.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/sigma", torch.exp(log_sigma).mean(), batch_size=size)
        return loss

    def evaluate(self, batch: dict[str, Any], batch_idx: int, stage: str, metrics: PairwiseMetrics) -> None:
        mu, log_sigma = self.pair_scores(batch)
        # The deterministic estimate on held-out pairs, so validation losses compare across epochs.
        config = replace(self.loss_config, uncertainty_method="gauss_hermite")
        self.log(f"{stage}/loss", pairwise_loss(mu, log_sigma, batch["pair_label"], config), batch_size=mu.shape[0])
        metrics.update(mu, log_sigma, batch["pair_label"], batch["truth_gap"])
