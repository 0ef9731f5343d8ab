"""Pairwise ranking against a queue of past samples (paper eq. 4 / 11, L_rank)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pair_terms(
    pred_i: torch.Tensor, target_i: torch.Tensor, pred_j: torch.Tensor, target_j: torch.Tensor,
    margin: float, label_margin: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softplus(margin - sign(y_i - y_j) (yhat_i - yhat_j)) for all (i, j); and the valid-pair mask.

    Inputs are (N,) and (M,); outputs (N, M). A pair is valid when |y_i - y_j| > label_margin:
    near-ties carry annotation noise, not order.
    """
    label_gap = target_i[:, None] - target_j[None, :]
    pred_gap = pred_i[:, None] - pred_j[None, :]
    valid = label_gap.abs() > label_margin
    return F.softplus(margin - torch.sign(label_gap) * pred_gap), valid


def margin_rank_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    queue_pred: torch.Tensor | None = None,
    queue_target: torch.Tensor | None = None,
    margin: float = 0.1,
    label_margin: float = 0.05,
) -> torch.Tensor:
    """Mean over valid pairs of softplus(m - (yhat_better - yhat_worse)), per dim, then averaged.

    Pairs: every unordered pair inside the batch, plus every (batch, queue) pair; queue rows
    are detached history, so only the batch side receives gradient.
    pred, target: (B, D); queue_pred, queue_target: (Q, D). Returns 0 if no pair is valid.
    """
    batch_size, num_dims = pred.shape
    upper = torch.triu(torch.ones(batch_size, batch_size, dtype=torch.bool, device=pred.device), diagonal=1)
    per_dim = []
    for d in range(num_dims):
        terms, valid = _pair_terms(pred[:, d], target[:, d], pred[:, d], target[:, d], margin, label_margin)
        losses = [terms[valid & upper]]
        if queue_pred is not None and len(queue_pred) > 0:
            q_terms, q_valid = _pair_terms(
                pred[:, d], target[:, d], queue_pred[:, d].to(pred), queue_target[:, d].to(target),
                margin, label_margin,
            )
            losses.append(q_terms[q_valid])
        all_terms = torch.cat(losses)
        per_dim.append(all_terms.mean() if all_terms.numel() else pred[:, d].sum() * 0.0)
    return torch.stack(per_dim).mean()
