"""RE-Reward objective: w_huber Huber + w_rank L_rank + w_plcc (1 - PLCC) (paper eq. 4 / 11)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ie_eval.losses.correlation import plcc_loss
from ie_eval.losses.queue import ScoreQueue, gather_rows
from ie_eval.losses.ranking import margin_rank_loss
from ie_eval.losses.regression import huber_loss


@dataclass
class RewardLossConfig:
    """Weights and sizes of the composite loss (paper table 7: loss weights, queue sizes, margin)."""

    huber_weight: float = 1.0  # weight of the per-dim Huber regression term
    rank_weight: float = 0.5  # weight of the margin-Softplus ranking term
    plcc_weight: float = 0.5  # weight of 1 - PLCC against the queue
    huber_delta: float = 1.0  # where Huber turns from quadratic to linear (target scale)
    rank_margin: float = 0.1  # m in softplus(m - (yhat_better - yhat_worse))
    rank_label_margin: float = 0.1  # pairs whose targets differ by less are not ranked
    rank_queue_size: int = 1024  # past (pred, target) rows the ranking term also pairs with
    plcc_queue_size: int = 512  # past rows the PLCC is computed over, with the batch

    def __post_init__(self) -> None:
        for name in ("huber", "rank", "plcc"):
            weight = getattr(self, f"{name}_weight")
            if weight < 0:
                raise ValueError(f"loss weight '{name}_weight' must be >= 0, got {weight}")


class RewardLoss(nn.Module):
    """Composite regression + ranking + correlation loss with FIFO queues of past samples.

    In training mode each call scores the batch against the queues, then pushes the batch
    (detached) into them; in eval mode the queues are neither read nor written, so
    validation losses are batch-local and do not leak into training. Under DDP every rank pushes the
    global batch (`gather_rows`), so the queues match a one-process run's; the batch terms stay
    rank-local (each rank ranks and correlates its own batch against the queue), so the full loss is
    not the one-process loss of the global batch.
    """

    def __init__(self, config: RewardLossConfig | None = None, num_dims: int = 3) -> None:
        super().__init__()
        config = config or RewardLossConfig()
        self.config = config
        self.rank_queue = ScoreQueue(config.rank_queue_size, num_dims)
        self.plcc_queue = ScoreQueue(config.plcc_queue_size, num_dims)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """pred, target: (B, D). Returns {'loss', 'huber', 'rank', 'plcc'} (unweighted parts)."""
        if not torch.isfinite(target).all():
            raise ValueError("RewardLoss: targets contain NaN or inf; fix the data (the reader rejects such rows)")
        cfg = self.config
        use_queue = self.training
        rank_queue = (self.rank_queue.pred, self.rank_queue.target) if use_queue else (None, None)
        plcc_queue = (self.plcc_queue.pred, self.plcc_queue.target) if use_queue else (None, None)
        parts = {
            "huber": huber_loss(pred, target, cfg.huber_delta),
            "rank": margin_rank_loss(pred, target, *rank_queue, cfg.rank_margin, cfg.rank_label_margin),
            "plcc": plcc_loss(pred, target, *plcc_queue),
        }
        total = cfg.huber_weight * parts["huber"] + cfg.rank_weight * parts["rank"] + cfg.plcc_weight * parts["plcc"]
        if use_queue:
            rows = gather_rows(pred), gather_rows(target)
            self.rank_queue.push(*rows)
            self.plcc_queue.push(*rows)
        return {"loss": total, **parts}
