"""Held-out metrics of a pairwise reward model: accuracy of its mu and how its sigma tracks close calls."""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


class PairwiseMetrics(Metric):
    """Over the non-tied pairs seen: `pair_accuracy` (1 when the preferred edit's mu is higher, 0.5 on
    equal mus), `pair_sigma` (mean std of the score difference, sqrt(sigma_A^2 + sigma_B^2)), and where
    the pairs carry a truth gap, that sigma on the closer half of the pairs (`sigma_small_gap`) and on
    the wider half (`sigma_large_gap`), split at the median gap."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("credit", default=[], dist_reduce_fx="cat")
        self.add_state("sigma", default=[], dist_reduce_fx="cat")
        self.add_state("gap", default=[], dist_reduce_fx="cat")

    def update(self, mu: torch.Tensor, log_sigma: torch.Tensor, label: torch.Tensor, gap: torch.Tensor) -> None:
        """mu, log_sigma: (P, 2) fused scores of each pair's [first, second]; label (P,) 1 / 0 / 0.5; gap (P,)."""
        decisive = label != 0.5
        mu, log_sigma, label, gap = mu[decisive].float(), log_sigma[decisive].float(), label[decisive], gap[decisive]
        sign = torch.where(label > 0.5, 1.0, -1.0).to(mu)
        delta = sign * (mu[:, 0] - mu[:, 1])
        self.credit.append(torch.where(delta > 0, 1.0, torch.where(delta == 0, 0.5, 0.0)))
        self.sigma.append(torch.exp(2 * log_sigma).sum(dim=1).sqrt())
        self.gap.append(gap.float().to(mu.device))

    def compute(self) -> dict[str, torch.Tensor]:
        credit, sigma, gap = dim_zero_cat(self.credit), dim_zero_cat(self.sigma), dim_zero_cat(self.gap)
        out = {"pair_accuracy": credit.mean(), "pair_sigma": sigma.mean(), "pairs": torch.tensor(float(credit.numel()))}
        known = ~gap.isnan()
        if known.sum() >= 2:
            gaps, sigmas = gap[known], sigma[known]
            order = torch.argsort(gaps)
            half = order.numel() // 2
            out["sigma_small_gap"] = sigmas[order[:half]].mean()
            out["sigma_large_gap"] = sigmas[order[half:]].mean()
        return out


class ComparisonAccuracy(Metric):
    """Mean of per-comparison credits (`data.pairwise.comparison_credits`): held-out pairwise accuracy."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("credit", default=[], dist_reduce_fx="cat")

    def update(self, credits: torch.Tensor) -> None:
        self.credit.append(credits.float().to(self.device))

    def compute(self) -> dict[str, torch.Tensor]:
        credit = dim_zero_cat(self.credit)
        return {"pair_accuracy": credit.mean() if credit.numel() else torch.tensor(float("nan"))}
