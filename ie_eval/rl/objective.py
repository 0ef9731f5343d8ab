"""The GRPO objective's settings (`GRPOConfig`, the `grpo:` block of a config) and the guard that
keeps a non-finite reward from ever becoming a training signal."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ie_eval.losses.grpo import AGGREGATIONS
from ie_eval.rl.scorers import RewardUnavailableError


@dataclass
class GRPOConfig:
    """The RL objective (paper table 10 sets these at scale).

    group_size: critiques sampled per prompt (G). ppo_epochs: policy updates per rollout batch.
    clip_eps / clip_eps_high: surrogate clip range [1 - eps, 1 + eps_high] (eps_high None: = eps).
    beta: KL(policy || reference) coefficient, k3 estimator. scale_rewards: divide advantages by the
    group std (False: Dr. GRPO). aggregation: "token" (mean over all completion tokens of the batch),
    "sequence" (mean per completion, then over completions) or "dr_grpo" (sum / (N * max_new_tokens)).
    importance_sampling: "token" ratios (GRPO) or one "sequence" ratio per completion (GSPO).
    aux_weight / aux_weak_weight: auxiliary Huber on the regression head against MOS (strong) or the
    SFT head's own scores for prompts without MOS (weak). max_grad_norm: clip (0: off).
    kl_ratio_weighted: weight the k3 KL by the importance ratio (its unbiased estimate when updates
    go off-policy, ppo_epochs > 1). logprob_micro_batch: completions per log-prob forward pass (None:
    all at once); bounds the (rows, length, vocab) logits on a GPU. logprob_chunk_tokens: take the
    log-probs through the LM head that many completion tokens at a time, never forming those logits
    (`linear_token_logprobs`; None: the plain logits; a head wrapped by an adapter always uses them).
    Off by default: it recomputes each chunk's logits in the backward pass, 0.18x the memory at 1.41x
    the time at Qwen3.5's vocabulary (docs/performance.md); set it when the logits bound the micro-batch.
    log_sampling_gap: keep the sampling engine's log-probs of the tokens it drew and log their mean gap to the trainer's
    (`train/sampling_logp_gap`): the engine / trainer mismatch, near 0 for HF generate.
    filter_zero_std_groups: leave groups whose rewards have (near) zero spread (population std <=
    zero_std_tolerance) out of the loss. mask_truncated_completions: leave completions cut at
    max_new_tokens out of the loss (TRL's option of that name). log_zero_std_groups: log the share
    of such groups (`train/frac_reward_zero_std`, as TRL names it). A step whose every completion
    is left out makes no update (`train/skipped_update` = 1). overlap_scoring_prompts: generate the
    step's prompts this many at a time and score each chunk's completions while the next one generates
    (`rl.overlap`; None: generate all, then score). Equal to the serial step when `sampling.seed` is set.
    """

    group_size: int = 8
    ppo_epochs: int = 1
    clip_eps: float = 0.2
    clip_eps_high: float | None = None
    beta: float = 0.04
    scale_rewards: bool = True
    aggregation: str = "token"
    importance_sampling: str = "token"
    aux_weight: float = 0.1
    aux_weak_weight: float = 0.02
    huber_delta: float = 1.0
    max_grad_norm: float = 1.0
    kl_ratio_weighted: bool = False
    logprob_micro_batch: int | None = None
    logprob_chunk_tokens: int | None = None
    log_sampling_gap: bool = False
    filter_zero_std_groups: bool = False
    mask_truncated_completions: bool = False
    log_zero_std_groups: bool = False
    overlap_scoring_prompts: int | None = None
    zero_std_tolerance: float = 1e-6

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"grpo.aggregation must be one of {AGGREGATIONS}, got '{self.aggregation}'")
        if self.logprob_chunk_tokens is not None and self.logprob_chunk_tokens < 1:
            raise ValueError(f"grpo.logprob_chunk_tokens must be >= 1 or null, got {self.logprob_chunk_tokens}")
        if self.overlap_scoring_prompts is not None and self.overlap_scoring_prompts < 1:
            raise ValueError(f"grpo.overlap_scoring_prompts must be >= 1 or null, got {self.overlap_scoring_prompts}")
        if self.zero_std_tolerance < 0:
            raise ValueError(f"grpo.zero_std_tolerance must be >= 0, got {self.zero_std_tolerance}")


def check_finite_rewards(total: torch.Tensor) -> None:
    """A NaN / inf total reward (e.g. from a reward term) is a failure, never a training signal."""
    if not torch.isfinite(total).all():
        bad = int((~torch.isfinite(total)).sum())
        raise RewardUnavailableError(f"{bad} of {total.numel()} total rewards are not finite", "non_finite")
