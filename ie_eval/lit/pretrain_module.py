"""Vision-language pretraining of a tiny backbone on the synthetic world: next-token CE on answers.

Thin: the backbone's own LM loss on the collator's `labels` (prompt and padding at -100), per-task
losses for the logs, and teacher-forced validation accuracy per task with the images and with
blank images (the no-vision control). The export is a Hugging Face checkpoint directory (model,
config, tokenizer, processor, chat template) that `load_backbone(path)` loads like any local
checkpoint. What it leaves out: no packing, no separate vision-only stage (the tasks train the
vision tower through the language loss).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from ie_eval.data.collate import IGNORE_INDEX, model_inputs
from ie_eval.data.pretrain.tasks import FALSE_WORD, TASKS, TRUE_WORD
from ie_eval.lit.common import as_config, hyperparameters
from ie_eval.lit.optim import OptimConfig, build_optimizer, split_vision
from ie_eval.models.backbone import load_backbone
from ie_eval.models.export import atomic_export

BUDGET_FILE = "input_budget.json"


def verdict_token_ids(tokenizer: Any) -> torch.Tensor:
    """Ids that spell the first token of "true" / "false" after a space or at the start of the answer."""
    ids = set()
    for word in (TRUE_WORD, FALSE_WORD):
        for prefix in ("", " "):
            ids.add(tokenizer(prefix + word, add_special_tokens=False)["input_ids"][0])
    return torch.tensor(sorted(ids))


def per_sample_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) mean next-token CE over each sample's supervised tokens."""
    shifted, target = logits[:, :-1].float(), labels[:, 1:]
    token_loss = F.cross_entropy(shifted.transpose(1, 2), target, ignore_index=IGNORE_INDEX, reduction="none")
    mask = (target != IGNORE_INDEX).float()
    return (token_loss * mask).sum(1) / mask.sum(1).clamp_min(1.0)


class PretrainModule(L.LightningModule):
    """Trains every weight of a tiny preset on world tasks (describe, change, verify).

    Args:
        backbone: a tiny preset name (or a directory, to continue pretraining).
        backbone_kwargs: preset overrides (architecture, tokenizer corpus), dtype, seed.
        optim: AdamW + warmup-cosine (`OptimConfig`); `vision_lr` sets the tower's own rate.
    """

    def __init__(self, backbone: str = "tiny-qwen3.5", backbone_kwargs: dict | None = None, optim: OptimConfig | None = None) -> None:
        super().__init__()
        self.optim_config = as_config(OptimConfig, optim)
        self.save_hyperparameters(hyperparameters(backbone=backbone, backbone_kwargs=backbone_kwargs, optim=self.optim_config))
        loaded = load_backbone(backbone, **(backbone_kwargs or {}))
        self.model, self.processor, self.family = loaded.model, loaded.processor, loaded.family
        self.register_buffer("verdict_ids", verdict_token_ids(self.processor.tokenizer), persistent=False)
        self.input_budget: dict[str, int] = {}

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        self.input_budget = dict(getattr(datamodule, "budget", {}))

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.model(**model_inputs(batch), use_cache=False).logits

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = per_sample_ce(self(batch), batch["labels"])
        loss = losses.mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(losses))
        for task in TASKS:
            chosen = [i for i, t in enumerate(batch["tasks"]) if t == task]
            if chosen:
                self.log(f"train/loss_{task}", losses[chosen].mean(), batch_size=len(chosen))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        condition = "blank" if dataloader_idx == 1 else "images"
        logits = self(batch)
        predicted, target = logits[:, :-1].argmax(-1), batch["labels"][:, 1:]
        supervised = target != IGNORE_INDEX
        verdicts = supervised & torch.isin(target, self.verdict_ids)
        losses = per_sample_ce(logits, batch["labels"])
        for task in TASKS:
            chosen = torch.tensor([t == task for t in batch["tasks"]], device=target.device)
            if not chosen.any():
                continue
            mask = (verdicts if task.startswith("verify") else supervised) & chosen[:, None]
            hits = ((predicted == target) & mask).sum().float()
            count = mask.sum().clamp_min(1).float()
            self.log(f"val_{condition}/{task}_accuracy", hits / count, batch_size=int(count), add_dataloader_idx=False)
            self.log(f"val_{condition}/{task}_loss", losses[chosen].mean(), batch_size=int(chosen.sum()), add_dataloader_idx=False)
        if condition == "images":
            self.log("val/loss", losses.mean(), batch_size=len(losses), add_dataloader_idx=False, prog_bar=True)

    def configure_optimizers(self) -> dict:
        language, vision = split_vision(self.model.named_parameters())
        return build_optimizer(language, [], self.optim_config, int(self.trainer.estimated_stepping_batches), vision_params=vision)

    def export_pretrained(self, directory: str | Path) -> Path:
        """The backbone as a Hugging Face checkpoint directory, plus the collator budget it was trained with
        (written last: an export without it is unfinished), whole or not at all (`atomic_export`)."""
        with atomic_export(directory, BUDGET_FILE) as partial:
            self.model.save_pretrained(partial)
            self.processor.save_pretrained(partial)
            (partial / BUDGET_FILE).write_text(json.dumps(self.input_budget, indent=2) + "\n")
        return Path(directory)
