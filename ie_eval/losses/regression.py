"""Absolute score regression."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def huber_loss(
    pred: torch.Tensor, target: torch.Tensor, delta: float = 1.0, row_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Huber loss averaged over valid rows and all dims.

    huber(e) = 0.5 e^2 if |e| <= delta else delta (|e| - 0.5 delta), with e = pred - target.
    pred, target: (B, D); row_mask: (B,) bool, rows to include (e.g. samples that have scores).
    Returns 0 (still attached to the graph) when no row is valid, so a batch without scores
    contributes nothing instead of NaN.
    """
    if pred.shape != target.shape:
        raise ValueError(f"huber_loss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if row_mask is not None:
        if not bool(row_mask.any()):
            return pred.sum() * 0.0
        pred, target = pred[row_mask], target[row_mask]
    return F.huber_loss(pred.float(), target.float(), delta=delta, reduction="mean")
