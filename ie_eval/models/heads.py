"""Multi-head MLP regression head: one small MLP per score dimension."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


@dataclass
class HeadConfig:
    """Regression head shape; `in_features` and `num_outputs` come from the backbone and task."""

    hidden_size: int = 256
    dropout: float = 0.1
    activation: str = "gelu"


class MultiHeadRegressor(nn.Module):
    """(B, H) pooled state -> (B, D) scores, one independent MLP per dimension.

    Separate MLPs keep one dimension's gradients from reshaping another's features; the
    input LayerNorm makes the head insensitive to the backbone's hidden-state scale, which
    differs between tiny random and real checkpoints. Runs in float32 whatever the backbone dtype.
    """

    def __init__(
        self,
        in_features: int,
        num_outputs: int = 3,
        hidden_size: int = 256,
        dropout: float = 0.1,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown head activation '{activation}'; choose one of {sorted(ACTIVATIONS)}")
        self.config = {
            "in_features": in_features, "num_outputs": num_outputs, "hidden_size": hidden_size,
            "dropout": dropout, "activation": activation,
        }
        self.norm = nn.LayerNorm(in_features)
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Linear(in_features, hidden_size),
                ACTIVATIONS[activation](),
                nn.Dropout(dropout),
                nn.Linear(hidden_size, 1),
            )
            for _ in range(num_outputs)
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        features = self.norm(pooled.float())
        return torch.cat([head(features) for head in self.heads], dim=-1)
