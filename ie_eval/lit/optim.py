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


def warmup_cosine_factor(step: int, total_steps: int, warmup_ratio: float, min_lr_ratio: float) -> float:
    """LR multiplier: linear 0 -> 1 over warmup, then cosine 1 -> min_lr_ratio at total_steps."""
    warmup = int(round(warmup_ratio * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(
    backbone_params: Iterable[nn.Parameter], head_params: Iterable[nn.Parameter], config: OptimConfig, total_steps: int
) -> dict:
    """Lightning `configure_optimizers` dict: two param groups, step-wise LambdaLR."""
    groups = [
        {"params": [p for p in backbone_params if p.requires_grad], "lr": config.lr, "name": "backbone"},
        {"params": [p for p in head_params if p.requires_grad], "lr": config.head_lr, "name": "head"},
    ]
    groups = [g for g in groups if g["params"]]
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay, betas=(config.beta1, config.beta2))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, total_steps, config.warmup_ratio, config.min_lr_ratio)
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
