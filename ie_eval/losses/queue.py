"""FIFO memory of past (detached) predictions and labels for the ranking and PLCC losses."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torchmetrics.utilities.distributed import gather_all_tensors


def gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """(sum_r B_r, D): the (detached) rows of every DDP rank in rank order, `rows` itself in one process.

    The queues hold the global batch on every rank: pushed rank-locally they would diverge, and DDP's
    buffer broadcast would replace every rank's queue with rank 0's, dropping the other ranks' rows."""
    rows = rows.detach()
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return rows
    return torch.cat(gather_all_tensors(rows.contiguous()))


class ScoreQueue(nn.Module):
    """Keeps the most recent `max_size` rows of (pred, target), oldest dropped first.

    Stored as buffers: they follow the module across devices and are saved in checkpoints,
    so a resumed run computes the same losses as an uninterrupted one. Their length varies,
    so loading adopts the saved shape instead of insisting on the current one.
    """

    def __init__(self, max_size: int, num_dims: int = 3) -> None:
        super().__init__()
        if max_size < 0:
            raise ValueError(f"queue size must be >= 0, got {max_size}")
        self.max_size = max_size
        self.register_buffer("pred", torch.zeros(0, num_dims), )
        self.register_buffer("target", torch.zeros(0, num_dims))

    def __len__(self) -> int:
        return int(self.pred.shape[0])

    @torch.no_grad()
    def push(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Append a batch (B, D); keeps the newest max_size rows, on the batch's device."""
        if self.max_size == 0:
            return
        pred = pred.detach().to(torch.float32)
        target = target.detach().to(device=pred.device, dtype=torch.float32)
        self.pred = torch.cat([self.pred.to(pred.device), pred])[-self.max_size :]
        self.target = torch.cat([self.target.to(pred.device), target])[-self.max_size :]

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        for name in ("pred", "target"):
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    def clear(self) -> None:
        self.pred = self.pred[:0]
        self.target = self.target[:0]
