"""Critic SFT: a thin LightningModule over CriticModel + sft_loss + CritiqueMetrics.

training step: one pass -> head scores + critique-token logits -> lambda_ce CE + lambda_huber Huber,
with the terms the data schedule's current phase switches on. Validation / test: the same losses
teacher-forced, the head's correlations, and (every `generation.every_n_epochs`) greedy critiques
scored for format stability, parsed-score correlations and ROUGE-1 against the references.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch

from ie_eval.data.records import MOS_DIMS
from ie_eval.lit.common import ScoringStageModule, as_config
from ie_eval.lit.strategies import shard_for_strategy
from ie_eval.losses.sft import LOSS_TERMS, SFTLossConfig, sft_loss
from ie_eval.metrics.critique import CritiqueMetrics
from ie_eval.models.critic import CriticModel


@dataclass
class GenerationConfig:
    """Greedy critique generation during validation / test.

    every_n_epochs: generate on validation epochs divisible by it (0: never during fit; test always
    generates unless max_batches is 0); max_batches: cap on generated batches per epoch (None: all).
    """

    max_new_tokens: int = 256
    every_n_epochs: int = 1
    max_batches: int | None = None


def total_optimizer_steps(trainer: L.Trainer) -> int:
    """Optimizer steps of the run, summing each epoch's own loader length when the data schedule changes it.

    Lightning's `estimated_stepping_batches` multiplies the first epoch's length by max_epochs,
    which under-counts once score-only samples join; the cosine schedule would end early.
    """
    datamodule = trainer.datamodule
    if not hasattr(datamodule, "train_batches_in_epoch") or not trainer.max_epochs or trainer.max_epochs < 0:
        return int(trainer.estimated_stepping_batches)
    limit = trainer.limit_train_batches
    steps = 0
    for epoch in range(trainer.max_epochs):
        batches = datamodule.train_batches_in_epoch(epoch)
        batches = min(batches, int(limit)) if isinstance(limit, int) else int(batches * float(limit))
        steps += math.ceil(batches / trainer.accumulate_grad_batches)
    return min(steps, trainer.max_steps) if trainer.max_steps > 0 else steps


class SFTModule(ScoringStageModule):
    """Fits the dual-head critic: critique text (CE) + (visual quality, alignment, preservation) (Huber).

    Args:
        loss / generation: see SFTLossConfig, GenerationConfig.
        critique_format: "sections" (ReasonEdit's, default) or "think_answer" (IE-Critic-R1's
            <think>/<answer> single score); the DataModule writes the SFT targets in it, and the
            export records it for every later stage.
        scoring: backbone, backbone_kwargs, adapter (lora / qlora / full / frozen, + include_vision),
            pooling (prefill | score_anchor | mean: the head reads the prompt), head, optim
            (see ScoringStageModule).
    """

    progress_metrics = ("mean_srcc", "format_rate")

    def __init__(
        self, loss: SFTLossConfig | None = None, generation: GenerationConfig | None = None,
        critique_format: str = "sections", **scoring: Any,
    ) -> None:
        super().__init__(**scoring)
        if self.adapter_config.kind == "adalora":
            raise ValueError("critic SFT uses adapter kind lora, qlora, full or frozen (paper: QLoRA), not adalora")
        self.loss_config = as_config(SFTLossConfig, loss)
        self.generation_config = as_config(GenerationConfig, generation)
        self.save_stage_hyperparameters(loss=self.loss_config, generation=self.generation_config,
                                        critique_format=critique_format)
        self.model = self.build_model(CriticModel, dims=MOS_DIMS, critique_format=critique_format)
        self.critique_format = self.model.critique_format  # read by the DataModule's collators
        self.val_metrics = CritiqueMetrics(MOS_DIMS)
        self.test_metrics = CritiqueMetrics(MOS_DIMS)

    def configure_model(self) -> None:
        self.model.attach_adapter(self.adapter_config)
        # The module trains through `sft_forward` and generates through `generate_texts`, not `forward`.
        shard_for_strategy(self, self.model, forward_methods=("sft_forward", "generate_texts"))

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Score-only mode: (B, 3) head scores."""
        return self.model(batch)

    # --- training -----------------------------------------------------------------------
    def active_losses(self) -> tuple[str, ...]:
        """Loss terms of the data schedule's current phase (all terms without a phased DataModule)."""
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        phase = getattr(datamodule, "current_phase", None)
        return phase.losses if phase is not None else LOSS_TERMS

    def on_train_epoch_start(self) -> None:
        datamodule = self.trainer.datamodule
        phase = getattr(datamodule, "current_phase", None)
        if phase is not None:
            self.log("train/phase", float(datamodule.phases.index(phase) + 1), on_step=False, on_epoch=True)

    def _losses(self, batch: dict[str, Any], active: tuple[str, ...]) -> tuple[dict[str, torch.Tensor], Any]:
        outputs = self.model.sft_forward(batch)
        parts = sft_loss(
            outputs.token_predictions(self.loss_config.ce_chunk_tokens), outputs.token_targets, outputs.scores,
            batch["mos"], batch["mos_mask"],
            self.loss_config, active,
        )
        return parts, outputs

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        parts, outputs = self._losses(batch, self.active_losses())
        size = outputs.scores.shape[0]
        # sync_dist: under DDP the logged value is the mean over ranks (equal shards), not rank 0's alone.
        self.log("train/loss", parts["loss"], prog_bar=True, batch_size=size, sync_dist=True)
        self.log("train/ce", parts["ce"], on_step=True, on_epoch=True, batch_size=size, sync_dist=True)
        self.log("train/huber", parts["huber"], on_step=True, on_epoch=True, batch_size=size, sync_dist=True)
        self.log("train/ce_tokens", float(outputs.token_targets.numel()), on_step=True, on_epoch=False,
                 batch_size=size, sync_dist=True, reduce_fx="sum")
        # Which rows the CE saw: observable by callbacks (the phase-switch test checks it).
        return {"loss": parts["loss"], "ce_rows": outputs.token_rows.unique()}

    # --- evaluation ---------------------------------------------------------------------
    def _should_generate(self, stage: str, batch_idx: int) -> bool:
        config = self.generation_config
        if config.max_batches is not None and batch_idx >= config.max_batches:
            return False
        if stage == "test":
            return True
        return config.every_n_epochs > 0 and (self.current_epoch + 1) % config.every_n_epochs == 0

    def evaluate(self, batch: dict[str, Any], batch_idx: int, stage: str, metrics: CritiqueMetrics) -> None:
        parts, outputs = self._losses(batch, LOSS_TERMS)
        size = outputs.scores.shape[0]
        self.log(f"{stage}/loss", parts["loss"], batch_size=size, sync_dist=True)
        self.log(f"{stage}/ce", parts["ce"], batch_size=size, sync_dist=True)
        self.log(f"{stage}/huber", parts["huber"], batch_size=size, sync_dist=True)
        metrics.update_scores(outputs.scores, batch["mos"], batch["mos_mask"])
        if self._should_generate(stage, batch_idx):
            result = self.model.critique(batch["generation"], self.generation_config.max_new_tokens)
            metrics.update_texts(
                result.parsed, batch["mos"], batch["mos_mask"], result.texts, batch["references"], batch.get("facts")
            )

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        result = self.model.critique(batch["generation"], self.generation_config.max_new_tokens)
        return {
            "sample_ids": batch["sample_ids"], "critiques": result.texts, "scores": result.scores.float().cpu(),
            "parsed_scores": [p.scores for p in result.parsed], "parsed_overall": [p.overall for p in result.parsed],
        }

    def total_steps(self) -> int:
        return total_optimizer_steps(self.trainer)
