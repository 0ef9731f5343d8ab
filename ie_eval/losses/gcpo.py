"""GCPO's rewards (Edit-R1, "Group Contrastive Preference Optimization"): pairwise preferences as
pointwise rewards for the N sampled traces of each side of a comparison.

For a pair where edit w is preferred over edit l, with parsed scores tau_w (N traces of w) and
tau_l (N traces of l):

    r_w,j = (1/N) sum_k 1[tau_w,j > tau_l,k]      a preferred trace: the share of rejected traces it beats
    r_l,j = (1/N) sum_k 1[tau_l,j < tau_w,k]      a rejected trace: the share of preferred traces above it

Ties count as neither; a NaN score (a trace that does not parse) wins no comparison and its
comparisons count as neither for the other side. The advantage is r minus the mean of its own
side's group (no std division: `group_advantages(..., scale_by_std=False)` with group size N),
and the policy loss is the PPO-clip surrogate over both groups without a KL term by default.
"""

from __future__ import annotations

import torch


def win_ratio_rewards(tau_preferred: torch.Tensor, tau_rejected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, N_w) and (P, N_l) parsed scores -> their (P, N_w) and (P, N_l) win-ratio rewards."""
    if tau_preferred.dim() != 2 or tau_rejected.dim() != 2 or tau_preferred.shape[0] != tau_rejected.shape[0]:
        raise ValueError(f"win_ratio_rewards: (P, N) scores per side, got {tuple(tau_preferred.shape)} and "
                         f"{tuple(tau_rejected.shape)}")
    above = tau_preferred.float().unsqueeze(2) > tau_rejected.float().unsqueeze(1)  # (P, N_w, N_l); NaN: False
    below = tau_rejected.float().unsqueeze(2) < tau_preferred.float().unsqueeze(1)  # (P, N_l, N_w)
    return above.float().mean(dim=2), below.float().mean(dim=2)
