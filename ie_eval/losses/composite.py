"""RE-Reward objective: w_huber Huber + w_rank L_rank + w_plcc (1 - PLCC) (paper eq. 4 / 11)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ie_eval.losses.correlation import plcc_loss
from ie_eval.losses.queue import ScoreQueue
from ie_eval.losses.ranking import margin_rank_loss
from ie_eval.losses.regression import huber_loss


@dataclass
class RewardLossConfig:
    """Weights and sizes of the composite loss (paper table 7: loss weights, queue sizes, margin)."""

    huber_weight: float = 1.0
    rank_weight: float = 0.5
    plcc_weight: float = 0.5
    huber_delta: float = 1.0
    rank_margin: float = 0.1
    rank_label_margin: float = 0.1
    rank_queue_size: int = 1024
    plcc_queue_size: int = 512


class RewardLoss(nn.Module):
    """Composite regression + ranking + correlation loss with FIFO queues of past samples.

    In training mode each call scores the batch against the queues, then pushes the batch
    (detached) into them; in eval mode the queues are neither read nor written, so
    validation losses are batch-local and do not leak into training.
    """

    def __init__(
        self,
        huber_weight: float = 1.0,
        rank_weight: float = 0.5,
        plcc_weight: float = 0.5,
        huber_delta: float = 1.0,
        rank_margin: float = 0.1,
        rank_label_margin: float = 0.1,
        rank_queue_size: int = 1024,
        plcc_queue_size: int = 512,
        num_dims: int = 3,
    ) -> None:
        super().__init__()
        for name, weight in (("huber", huber_weight), ("rank", rank_weight), ("plcc", plcc_weight)):
            if weight < 0:
                raise ValueError(f"loss weight '{name}_weight' must be >= 0, got {weight}")
        self.huber_weight, self.rank_weight, self.plcc_weight = huber_weight, rank_weight, plcc_weight
        self.huber_delta = huber_delta
        self.rank_margin, self.rank_label_margin = rank_margin, rank_label_margin
        self.rank_queue = ScoreQueue(rank_queue_size, num_dims)
        self.plcc_queue = ScoreQueue(plcc_queue_size, num_dims)

    @classmethod
    def from_config(cls, config: RewardLossConfig, num_dims: int = 3) -> RewardLoss:
        return cls(**asdict(config), num_dims=num_dims)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """pred, target: (B, D). Returns {'loss', 'huber', 'rank', 'plcc'} (unweighted parts)."""
        if not torch.isfinite(target).all():
            raise ValueError("RewardLoss: targets contain NaN or inf; fix the data (the reader rejects such rows)")
        use_queue = self.training
        rank_queue = (self.rank_queue.pred, self.rank_queue.target) if use_queue else (None, None)
        plcc_queue = (self.plcc_queue.pred, self.plcc_queue.target) if use_queue else (None, None)
        parts = {
            "huber": huber_loss(pred, target, self.huber_delta),
            "rank": margin_rank_loss(pred, target, *rank_queue, self.rank_margin, self.rank_label_margin),
            "plcc": plcc_loss(pred, target, *plcc_queue),
        }
        total = (
            self.huber_weight * parts["huber"] + self.rank_weight * parts["rank"] + self.plcc_weight * parts["plcc"]
        )
        if use_queue:
            self.rank_queue.push(pred, target)
            self.plcc_queue.push(pred, target)
        return {"loss": total, **parts}
