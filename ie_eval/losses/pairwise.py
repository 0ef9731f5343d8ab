"""Pairwise preference losses of a reward model that predicts (mu, log sigma) per edit (EditReward).

For a pair where A is preferred over B, with predicted means mu_A, mu_B and standard deviations
sigma_A = exp(log_sigma_A), sigma_B = exp(log_sigma_B) (EditReward: sigma = exp of the head's
second output), the score difference is z ~ N(mu_A - mu_B, sigma_A^2 + sigma_B^2) and:

    uncertainty:  -E_z[log sigmoid(z)]                  EditReward's default; by Monte Carlo
                                                         (reparameterized, 1000 draws as EditReward)
                                                         or by Gauss-Hermite quadrature (deterministic)
    probit:       -log Phi((mu_A - mu_B) / sqrt(sigma_A^2 + sigma_B^2))   the likelihood that A beats B
    bt:           -log sigmoid(mu_A - mu_B)              Bradley-Terry on the means
    bt_ties:      Rao-Kupper with k (EditReward's `btt`, k = 5): for D = mu_A - mu_B,
                  a win:  -log sigmoid(D - ln k)
                  a tie:  -log sigmoid(D - ln k) - log sigmoid(-D - ln k) - ln(k^2 - 1)

Pairs come as (A, B, label) with label 1 (A preferred), 0 (B preferred) or 0.5 (a tie), the
convention of `PreferenceGroup.pairs`. Every loss but `bt_ties` leaves ties out (they carry no
direction); `pairwise_loss` returns 0 (with a gradient path) when a batch has no usable pair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

PAIRWISE_LOSSES: tuple[str, ...] = ("uncertainty", "probit", "bt", "bt_ties")
UNCERTAINTY_METHODS: tuple[str, ...] = ("monte_carlo", "gauss_hermite")


@dataclass
class PairwiseLossConfig:
    """Which pairwise loss and how it is estimated (EditReward's published setup: uncertainty, 1000 draws)."""

    kind: str = "uncertainty"
    uncertainty_method: str = "monte_carlo"  # or gauss_hermite: the same expectation, deterministically
    mc_samples: int = 1000  # Monte Carlo draws per pair (EditReward: 1000)
    gh_nodes: int = 64  # Gauss-Hermite nodes: within 1e-7 of adaptive quadrature up to a difference std of 3
    ties_k: float = 5.0  # Rao-Kupper k of bt_ties (EditReward: 5); ties have probability mass when k > 1

    def __post_init__(self) -> None:
        if self.kind not in PAIRWISE_LOSSES:
            raise ValueError(f"unknown pairwise loss {self.kind!r}; choose one of {PAIRWISE_LOSSES}")
        if self.uncertainty_method not in UNCERTAINTY_METHODS:
            raise ValueError(f"unknown uncertainty_method {self.uncertainty_method!r}; choose one of {UNCERTAINTY_METHODS}")
        if self.mc_samples < 1 or self.gh_nodes < 1 or self.ties_k <= 1:
            raise ValueError(f"need mc_samples >= 1, gh_nodes >= 1 and ties_k > 1, got {self.mc_samples}, "
                             f"{self.gh_nodes}, {self.ties_k}")


def difference_distribution(
    mu_a: torch.Tensor, log_sigma_a: torch.Tensor, mu_b: torch.Tensor, log_sigma_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of z = s_A - s_B for independent s ~ N(mu, exp(log_sigma)^2)."""
    variance = torch.exp(2 * log_sigma_a) + torch.exp(2 * log_sigma_b)
    return mu_a - mu_b, torch.sqrt(variance)


def uncertainty_loss_monte_carlo(
    mean: torch.Tensor, std: torch.Tensor, samples: int = 1000, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(P,) -E[log sigmoid(z)], z = mean + std * eps, eps ~ N(0, 1): reparameterized, so mean and std get gradients."""
    eps = torch.randn((*mean.shape, samples), generator=generator, device=mean.device, dtype=mean.dtype)
    return -F.logsigmoid(mean.unsqueeze(-1) + std.unsqueeze(-1) * eps).mean(dim=-1)


def uncertainty_loss_gauss_hermite(mean: torch.Tensor, std: torch.Tensor, nodes: int = 64) -> torch.Tensor:
    """(P,) -E[log sigmoid(z)] by Gauss-Hermite quadrature: E[f(z)] = pi^-1/2 sum_i w_i f(mean + sqrt(2) std x_i)."""
    x, w = np.polynomial.hermite.hermgauss(nodes)
    x = torch.as_tensor(x, dtype=mean.dtype, device=mean.device)
    w = torch.as_tensor(w, dtype=mean.dtype, device=mean.device) / math.sqrt(math.pi)
    z = mean.unsqueeze(-1) + math.sqrt(2.0) * std.unsqueeze(-1) * x
    return -(F.logsigmoid(z) * w).sum(dim=-1)


def probit_loss(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(P,) -log Phi(mean / std): minus the log-likelihood that A's score exceeds B's."""
    return -torch.special.log_ndtr(mean / std)


def bt_loss(delta: torch.Tensor) -> torch.Tensor:
    """(P,) Bradley-Terry -log sigmoid(mu_A - mu_B)."""
    return -F.logsigmoid(delta)


def bt_ties_loss(delta: torch.Tensor, tie: torch.Tensor, k: float = 5.0) -> torch.Tensor:
    """(P,) Rao-Kupper negative log-likelihood: a win (tie False) or a tie (tie True) of A against B."""
    log_k = math.log(k)
    win = -F.logsigmoid(delta - log_k)
    tied = win - F.logsigmoid(-delta - log_k) - math.log(k * k - 1)
    return torch.where(tie, tied, win)


def oriented(
    mu: torch.Tensor, log_sigma: torch.Tensor, label: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mu_A, log_sigma_A, mu_B, log_sigma_B) with A the preferred side: mu, log_sigma are (P, 2) [first, second]."""
    second = label < 0.5
    first_mu, second_mu = torch.where(second, mu[:, 1], mu[:, 0]), torch.where(second, mu[:, 0], mu[:, 1])
    first_ls = torch.where(second, log_sigma[:, 1], log_sigma[:, 0])
    second_ls = torch.where(second, log_sigma[:, 0], log_sigma[:, 1])
    return first_mu, first_ls, second_mu, second_ls


def pairwise_loss(
    mu: torch.Tensor,
    log_sigma: torch.Tensor,
    label: torch.Tensor,
    config: PairwiseLossConfig | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean loss over the usable pairs. mu, log_sigma: (P, 2), the fused (mu, log sigma) of each pair's
    two edits; label: (P,) 1 / 0 / 0.5 (first preferred / second preferred / tie)."""
    config = config or PairwiseLossConfig()
    if mu.shape != log_sigma.shape or mu.dim() != 2 or mu.shape[1] != 2 or label.shape != mu.shape[:1]:
        raise ValueError(f"pairwise_loss: mu, log_sigma (P, 2) and label (P,), got {tuple(mu.shape)}, "
                         f"{tuple(log_sigma.shape)}, {tuple(label.shape)}")
    tie = label == 0.5
    mu_a, ls_a, mu_b, ls_b = oriented(mu, log_sigma, label)
    if config.kind == "bt_ties":
        return bt_ties_loss(mu_a - mu_b, tie, config.ties_k).mean()
    keep = ~tie
    if not keep.any():
        return (mu.sum() + log_sigma.sum()) * 0.0
    mu_a, ls_a, mu_b, ls_b = mu_a[keep], ls_a[keep], mu_b[keep], ls_b[keep]
    if config.kind == "bt":
        return bt_loss(mu_a - mu_b).mean()
    mean, std = difference_distribution(mu_a, ls_a, mu_b, ls_b)
    if config.kind == "probit":
        return probit_loss(mean, std).mean()
    if config.uncertainty_method == "gauss_hermite":
        return uncertainty_loss_gauss_hermite(mean, std, config.gh_nodes).mean()
    return uncertainty_loss_monte_carlo(mean, std, config.mc_samples, generator).mean()
