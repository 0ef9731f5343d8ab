"""GRPO policy loss (DeepSeekMath, Shao et al. 2024; ReasonEdit section 5.3, appendix D.4).

For one prompt q, G completions o_1..o_G with rewards r_1..r_G, and per-token log-probs of the
current policy (logp), the policy that sampled them (old_logp) and the reference (ref_logp):

    A_i     = (r_i - mean_j r_j) / (std_j r_j + eps)                  group advantage (`group_advantages`)
    rho_it  = exp(logp_it - old_logp_it)                               importance ratio ("token" level)
    l_it    = -min(rho_it A_i, clip(rho_it, 1 - eps_low, 1 + eps_high) A_i) + beta * KL_it
    KL_it   = exp(ref_it - logp_it) - (ref_it - logp_it) - 1           k3 estimator (`k3_kl`)

and the loss averages l_it over the completion tokens (m_it = completion_mask) by `aggregation`:

    "sequence":  1/N sum_i (sum_t m_it l_it / sum_t m_it)     GRPO paper; TRL loss_type="grpo"
    "token":     sum_it m_it l_it / sum_it m_it               TRL loss_type="bnpo" (= "dapo" on one batch)
    "dr_grpo":   sum_it m_it l_it / (N * max_completion_length)   Dr. GRPO (Liu et al. 2025); TRL "dr_grpo"

`importance_sampling="sequence"` replaces rho_it by the GSPO ratio
exp(sum_t m_it (logp_it - old_logp_it) / sum_t m_it), one per completion. `kl_ratio_weighted`
multiplies KL_it by rho_it (DeepSeek-V3.2's unbiased KL gradient; TRL's `use_bias_correction_kl`).
All of this is cross-checked against TRL's `GRPOTrainer._compute_loss` in tests/losses/test_grpo.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

AGGREGATIONS: tuple[str, ...] = ("token", "sequence", "dr_grpo")
IMPORTANCE_LEVELS: tuple[str, ...] = ("token", "sequence")


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale_by_std: bool = True, eps: float = 1e-4
) -> torch.Tensor:
    """Group-relative advantages A_i = (r_i - mean_g) / (std_g + eps), same shape as `rewards`.

    rewards: (P * G,) with each prompt's G completions contiguous (row p * G + g), or (P, G).
    std_g is the unbiased (Bessel-corrected, / (G - 1)) standard deviation of the group, as in
    TRL (`nanstd`); eps = 1e-4 is TRL's constant too. `scale_by_std=False` is Dr. GRPO:
    A_i = r_i - mean_g. A group of one has std 0 (its advantage is 0 either way).
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    if not torch.isfinite(rewards).all():
        raise ValueError("group_advantages: rewards contain NaN or inf; never train on missing rewards")
    grouped = rewards.float().reshape(-1, group_size)  # (P, G)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale_by_std:
        std = grouped.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(centred[:, :1])
        centred = centred / (std + eps)
    return centred.reshape(rewards.shape)


def zero_std_groups(rewards: torch.Tensor, group_size: int, tolerance: float = 1e-6) -> torch.Tensor:
    """(P,) bool: groups whose rewards all but agree (std <= tolerance): they carry no ranking signal.

    The std is the population one here: a group is "zero std" when its spread is, whatever the
    estimator (TRL's `frac_reward_zero_std` compares its std to 0 with `isclose`). RE-Reward is
    continuous, so a filter on equal group means would almost never fire: the spread is what counts.
    """
    grouped = rewards.float().reshape(-1, group_size)
    return grouped.std(dim=1, correction=0) <= tolerance


def loss_rows(
    rewards: torch.Tensor, finished: torch.Tensor, group_size: int, *, filter_zero_std: bool = False,
    mask_truncated: bool = False, tolerance: float = 1e-6,
) -> torch.Tensor:
    """(N,) bool: which completions enter the policy loss.

    filter_zero_std: drop every completion of a group whose rewards have (near) zero spread (their
    advantages are 0; kept, they only dilute the mean and add KL). mask_truncated: drop completions
    cut at max_new_tokens before a stop token (TRL's `mask_truncated_completions`): a cut critique's
    reward says little about the tokens it has.
    """
    keep = torch.ones_like(finished, dtype=torch.bool)
    if filter_zero_std:
        keep &= ~zero_std_groups(rewards, group_size, tolerance).repeat_interleave(group_size).to(keep.device)
    if mask_truncated:
        keep &= finished.bool()
    return keep


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || pi_ref): exp(ref - logp) - (ref - logp) - 1 (>= 0, Schulman 2020)."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


@dataclass
class GRPOLossOutput:
    """The loss to backpropagate and detached statistics (token means over the completion mask).

    policy_loss: the aggregated clipped-surrogate term alone (no KL).
    kl: mean k3 KL to the reference (0 when beta == 0 and no ref_logp is given).
    clip_fraction: share of tokens whose ratio is clipped in the direction that stops the gradient
        (ratio < 1 - eps_low with A < 0, or ratio > 1 + eps_high with A > 0); split into
        clip_low_fraction / clip_high_fraction. With sequence-level ratios, shares of completions.
    ratio_mean: mean importance ratio (1 on the first update of a rollout batch).
    """

    loss: torch.Tensor
    policy_loss: torch.Tensor
    kl: torch.Tensor
    clip_fraction: torch.Tensor
    clip_low_fraction: torch.Tensor
    clip_high_fraction: torch.Tensor
    ratio_mean: torch.Tensor

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """Plain floats for a logger: {prefix + name: value} for every field."""
        return {f"{prefix}{name}": float(value.detach()) for name, value in vars(self).items()}


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor | None,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    clip_eps_low: float = 0.2,
    clip_eps_high: float | None = None,
    beta: float = 0.0,
    aggregation: str = "token",
    importance_sampling: str = "token",
    kl_ratio_weighted: bool = False,
    max_completion_length: int | None = None,
) -> GRPOLossOutput:
    """Clipped-surrogate GRPO loss with a k3 KL penalty (formulas in the module docstring).

    logp / old_logp / ref_logp: (N, L) per-token log-probs of the completion tokens; old_logp
        None means on-policy (ratio 1, the first update after sampling: old = logp.detach()).
    advantages: (N,), one per completion. completion_mask: (N, L), 1 on real completion tokens.
    clip_eps_high: None = clip_eps_low (symmetric); DAPO's clip-higher sets it larger.
    beta: KL coefficient; ref_logp is required when beta != 0.
    max_completion_length: the constant normalizer of "dr_grpo" (the sampling max_new_tokens).
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown GRPO aggregation {aggregation!r}; choose one of {AGGREGATIONS}")
    if importance_sampling not in IMPORTANCE_LEVELS:
        raise ValueError(f"unknown importance_sampling {importance_sampling!r}; choose one of {IMPORTANCE_LEVELS}")
    if beta != 0.0 and ref_logp is None:
        raise ValueError("grpo_loss: beta != 0 needs ref_logp (the reference policy's log-probs)")
    if aggregation == "dr_grpo" and max_completion_length is None:
        raise ValueError("grpo_loss: aggregation 'dr_grpo' needs max_completion_length (its constant normalizer)")
    if advantages.dim() != 1 or advantages.shape[0] != logp.shape[0]:
        raise ValueError(f"advantages must be ({logp.shape[0]},), got {tuple(advantages.shape)}")
    mask = completion_mask.to(device=logp.device, dtype=logp.dtype)
    old_logp = logp.detach() if old_logp is None else old_logp
    adv = advantages.to(device=logp.device, dtype=logp.dtype).unsqueeze(1)  # (N, 1)

    log_ratio = logp - old_logp  # (N, L)
    if importance_sampling == "sequence":  # GSPO: one length-normalized ratio per completion, (N, 1)
        log_ratio = ((log_ratio * mask).sum(1) / mask.sum(1).clamp(min=1.0)).unsqueeze(1)
    ratio = torch.exp(log_ratio)
    eps_high = clip_eps_low if clip_eps_high is None else clip_eps_high
    clipped = torch.clamp(ratio, 1 - clip_eps_low, 1 + eps_high)
    surrogate = -torch.min(ratio * adv, clipped * adv)  # (N, L) or (N, 1)
    per_token = surrogate.expand_as(logp)
    kl = torch.zeros_like(logp)
    if ref_logp is not None:
        kl = k3_kl(logp, ref_logp)
        if kl_ratio_weighted:
            kl = kl * ratio
    total = per_token + beta * kl if beta != 0.0 else per_token

    def aggregate(values: torch.Tensor) -> torch.Tensor:
        if aggregation == "sequence":
            return ((values * mask).sum(1) / mask.sum(1).clamp(min=1.0)).mean()
        if aggregation == "token":
            return (values * mask).sum() / mask.sum().clamp(min=1.0)
        return (values * mask).sum() / (values.shape[0] * max_completion_length)

    loss = aggregate(total)
    with torch.no_grad():
        is_low = ((ratio < 1 - clip_eps_low) & (adv < 0)).to(logp.dtype)
        is_high = ((ratio > 1 + eps_high) & (adv > 0)).to(logp.dtype)
        return GRPOLossOutput(
            loss=loss,
            policy_loss=aggregate(per_token),
            kl=_masked_mean(kl, mask),
            clip_fraction=_masked_mean(torch.maximum(is_low, is_high), mask),
            clip_low_fraction=_masked_mean(is_low, mask),
            clip_high_fraction=_masked_mean(is_high, mask),
            ratio_mean=_masked_mean(ratio, mask),
        )


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked tokens of (N, L) values; (N, 1) sequence-level values average over completions."""
    if values.shape != mask.shape:
        return values.mean()
    return (values * mask).sum() / mask.sum().clamp(min=1.0)
