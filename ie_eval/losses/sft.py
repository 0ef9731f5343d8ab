"""Critic SFT loss (ReasonEdit eq. 5 / 13): L = lambda_ce * CE(critique tokens) + lambda_huber * Huber(scores).

CE covers the critique tokens only (the prompt is masked by the collator's labels) of samples
that have a critique; Huber covers every sample that has MOS. A phase of the data schedule may
switch either term off (`active`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ie_eval.data.collate import IGNORE_INDEX
from ie_eval.losses.linear_ce import DEFAULT_CHUNK_TOKENS, HeadInputs, linear_cross_entropy
from ie_eval.losses.regression import huber_loss

LOSS_TERMS: tuple[str, ...] = ("ce", "huber")


@dataclass
class SFTLossConfig:
    """Weights of the two terms (the paper's lambda_ce, lambda_reg) and the Huber threshold.

    ce_chunk_tokens: CE through the LM head this many critique tokens at a time, never holding the
    (N, V) logits (`losses.linear_ce`; same value and gradients); None: the plain logits.
    """

    ce_weight: float = 1.0
    huber_weight: float = 1.0
    huber_delta: float = 1.0
    ce_chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS


def check_loss_terms(terms: Collection[str]) -> tuple[str, ...]:
    unknown = sorted(set(terms) - set(LOSS_TERMS))
    if unknown:
        raise ValueError(f"unknown loss term(s) {unknown}; choose from {LOSS_TERMS}")
    return tuple(terms)


def critique_token_positions(
    labels: torch.Tensor, has_critique: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, cols, targets): positions whose NEXT token is a supervised critique token.

    labels: (B, T) with IGNORE_INDEX on prompt and padding; has_critique: (B,) bool.
    The logits at (row, col) predict `labels[row, col + 1]` (= targets), the usual causal shift.
    Rows without a critique are dropped even if they carry labels.
    """
    next_labels = labels[:, 1:]  # (B, T - 1)
    keep = (next_labels != IGNORE_INDEX) & has_critique.to(labels.device).bool().unsqueeze(1)
    rows, cols = keep.nonzero(as_tuple=True)
    return rows, cols, next_labels[rows, cols]


def critique_ce(token_logits: torch.Tensor | HeadInputs, token_targets: torch.Tensor,
                chunk_tokens: int | None = None) -> torch.Tensor:
    """Mean token cross-entropy -log softmax(logits)[target] over the N critique tokens of the batch.

    token_logits: (N, V), or the LM head's `HeadInputs` (CE chunked by `chunk_tokens`, default 512);
    token_targets: (N,). Returns 0 (attached) when N = 0, e.g. a batch of score-only samples.
    """
    if isinstance(token_logits, HeadInputs):
        if token_targets.numel() == 0:
            return token_logits.zero_term()
        return linear_cross_entropy(token_logits.hidden, token_logits.weight, token_targets, chunk_tokens or DEFAULT_CHUNK_TOKENS)
    if token_targets.numel() == 0:
        return token_logits.sum() * 0.0
    return F.cross_entropy(token_logits.float(), token_targets, reduction="mean")


def sft_loss(
    token_logits: torch.Tensor | HeadInputs,
    token_targets: torch.Tensor,
    scores: torch.Tensor,
    mos: torch.Tensor,
    mos_mask: torch.Tensor,
    config: SFTLossConfig,
    active: Collection[str] = LOSS_TERMS,
) -> dict[str, torch.Tensor]:
    """{"loss", "ce", "huber"}: loss = ce_weight * ce + huber_weight * huber over the `active` terms.

    token_logits: (N, V) logits or the LM head's `HeadInputs` (chunked CE, `config.ce_chunk_tokens`).
    scores, mos: (B, 3), mos NaN where missing; mos_mask: (B,) rows with MOS. Inactive terms are
    still reported (detached) so a phase's logs stay comparable; their head still gets a (zero) gradient.
    """
    check_loss_terms(active)
    with torch.set_grad_enabled(torch.is_grad_enabled() and "ce" in active):
        ce = critique_ce(token_logits, token_targets, config.ce_chunk_tokens)
    huber = huber_loss(scores, torch.nan_to_num(mos), delta=config.huber_delta, row_mask=mos_mask.bool())
    # Both heads join with weight 0 whatever is active: every trainable parameter (the untied LM head in a
    # Huber-only phase, the MLP head in a CE-only one) gets a gradient, which DDP needs on every rank.
    zero = token_logits.zero_term() if isinstance(token_logits, HeadInputs) else token_logits.sum() * 0.0
    loss = scores.sum() * 0.0 + zero
    if "ce" in active:
        loss = loss + config.ce_weight * ce
    if "huber" in active:
        loss = loss + config.huber_weight * huber
    return {
        "loss": loss,
        "ce": ce if "ce" in active else ce.detach(),
        "huber": huber if "huber" in active else huber.detach(),
    }
