"""AdamW with separate learning rates for adapters and heads, linear warmup then cosine decay."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class OptimConfig:
    """Optimizer and schedule knobs (paper tables 7, 9, 10 set these per stage)."""

    lr: float = 2e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.1
    # Vision tower + merger LR; None = `lr`. A random-init tiny vision path may need more than the LM.
    vision_lr: float | None = None


def warmup_cosine_factor(step: int, total_steps: int, warmup_ratio: float, min_lr_ratio: float) -> float:
    """LR multiplier: linear 0 -> 1 over warmup, then cosine 1 -> min_lr_ratio at total_steps."""
    warmup = int(round(warmup_ratio * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def split_vision(named_params: Iterable[tuple[str, nn.Parameter]]) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(language-side, vision-side) parameters; vision = the vision tower and its merger (`visual.` in the name)."""
    language, vision = [], []
    for name, param in named_params:
        (vision if ".visual." in f".{name}" else language).append(param)
    return language, vision


def build_optimizer(
    backbone_params: Iterable[nn.Parameter], head_params: Iterable[nn.Parameter], config: OptimConfig, total_steps: int,
    vision_params: Iterable[nn.Parameter] = (),
) -> dict:
    """Lightning `configure_optimizers` dict: backbone / vision / head param groups, step-wise LambdaLR."""
    vision_lr = config.lr if config.vision_lr is None else config.vision_lr
    groups = [
        {"params": [p for p in backbone_params if p.requires_grad], "lr": config.lr, "name": "backbone"},
        {"params": [p for p in vision_params if p.requires_grad], "lr": vision_lr, "name": "vision"},
        {"params": [p for p in head_params if p.requires_grad], "lr": config.head_lr, "name": "head"},
    ]
    groups = [g for g in groups if g["params"]]
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay, betas=(config.beta1, config.beta2))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, total_steps, config.warmup_ratio, config.min_lr_ratio)
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
