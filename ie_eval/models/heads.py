"""Multi-head MLP regression head: one small MLP per score dimension."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


@dataclass
class HeadConfig:
    """Regression head shape; `in_features` and `num_outputs` come from the backbone and task."""

    hidden_size: int = 256
    dropout: float = 0.1
    activation: str = "gelu"
    # "layer": per-sample LayerNorm (scale-free). "batch": per-feature standardization with running
    # statistics (BatchNorm), which removes the component every sample shares, so the small
    # sample-specific part of a random-init backbone's state (e.g. what the images add) is what the
    # MLP sees. "none": raw pooled state.
    input_norm: str = "layer"


INPUT_NORMS: tuple[str, ...] = ("layer", "batch", "none")
HALF_DTYPES = (torch.float16, torch.bfloat16)


class BatchStandardizer(nn.BatchNorm1d):
    """BatchNorm1d over (B, H) that falls back to its running statistics for a batch of one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


def input_norm_layer(kind: str, features: int) -> nn.Module:
    if kind not in INPUT_NORMS:
        raise ValueError(f"unknown head input_norm '{kind}'; choose one of {INPUT_NORMS}")
    if kind == "layer":
        return nn.LayerNorm(features)
    return BatchStandardizer(features) if kind == "batch" else nn.Identity()


class MultiHeadRegressor(nn.Module):
    """(B, H) pooled state -> (B, D) scores, one independent MLP per dimension.

    Separate MLPs keep one dimension's gradients from reshaping another's features; the
    input norm (`HeadConfig.input_norm`, LayerNorm by default) makes the head insensitive to the
    backbone's hidden-state scale, which differs between tiny random and real checkpoints. Runs in float32
    whatever the backbone dtype, also in a module cast to half precision (`_apply`).
    """

    outputs_per_head = 1

    def __init__(
        self,
        in_features: int,
        num_outputs: int = 3,
        hidden_size: int = 256,
        dropout: float = 0.1,
        activation: str = "gelu",
        input_norm: str = "layer",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown head activation '{activation}'; choose one of {sorted(ACTIVATIONS)}")
        self.config = {
            "in_features": in_features, "num_outputs": num_outputs, "hidden_size": hidden_size,
            "dropout": dropout, "activation": activation, "input_norm": input_norm,
        }
        self.norm = input_norm_layer(input_norm, in_features)
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Linear(in_features, hidden_size),
                ACTIVATIONS[activation](),
                nn.Dropout(dropout),
                nn.Linear(hidden_size, self.outputs_per_head),
            )
            for _ in range(num_outputs)
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        features = self.norm(pooled.float())
        return torch.cat([head(features) for head in self.heads], dim=-1)

    def _apply(self, fn, recurse: bool = True):
        # A `bf16-true` / `16-true` trainer casts the whole module tree to half precision; the head's few
        # weights stay float32, unrounded, as its forward is (a bf16 LayerNorm on a float32 input fails on
        # CPU and CUDA). Device moves still apply.
        def keep_float32(tensor: torch.Tensor) -> torch.Tensor:
            out = fn(tensor)
            if tensor.dtype == torch.float32 and out.dtype in HALF_DTYPES:
                return tensor.to(out.device)
            return out

        return super()._apply(keep_float32, recurse)


class GaussianHeads(MultiHeadRegressor):
    """(B, H) pooled state -> ((B, D) mu, (B, D) log sigma): one MLP per dimension with two outputs.

    EditReward's heads: each dimension predicts a mean and a log standard deviation (sigma = exp);
    at inference mu is the score and sigma says how sure the model is.
    """

    outputs_per_head = 2

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        features = self.norm(pooled.float())
        out = torch.stack([head(features) for head in self.heads], dim=1)  # (B, D, 2)
        return out[..., 0], out[..., 1]


FUSIONS: tuple[str, ...] = ("mean", "min", "sum")


def fuse_gaussian_heads(mu: torch.Tensor, log_sigma: torch.Tensor, mode: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """(..., D) per-dimension (mu, log sigma) -> (...) one (mu, log sigma), as EditReward fuses its heads.

    mean: the mean of the mus and of the log sigmas; min: the minimum of each, taken separately;
    sum: the mus added and the variances added (sigma = sqrt(sum sigma_d^2)).
    """
    if mode == "mean":
        return mu.mean(dim=-1), log_sigma.mean(dim=-1)
    if mode == "min":
        return mu.min(dim=-1).values, log_sigma.min(dim=-1).values
    if mode == "sum":
        return mu.sum(dim=-1), 0.5 * torch.logsumexp(2 * log_sigma, dim=-1)
    raise ValueError(f"unknown head fusion {mode!r}; choose one of {FUSIONS}")
