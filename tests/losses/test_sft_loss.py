"""Critic SFT loss against hand-computed values."""

import math

import pytest
import torch

from ie_eval.data.collate import IGNORE_INDEX
from ie_eval.losses.sft import SFTLossConfig, critique_ce, critique_token_positions, sft_loss

I = IGNORE_INDEX  # noqa: E741


def test_token_positions_shift_by_one_and_skip_prompt_padding_and_score_only_rows():
    labels = torch.tensor([
        [I, I, 7, 8, I],  # prompt, prompt, answer, answer, pad
        [I, I, I, I, I],  # score-only sample
        [I, 5, 6, I, I],  # labels on a row flagged as having no critique: ignored
    ])
    rows, cols, targets = critique_token_positions(labels, torch.tensor([True, False, False]))
    assert rows.tolist() == [0, 0] and cols.tolist() == [1, 2] and targets.tolist() == [7, 8]


def test_sft_loss_matches_hand_computed_values():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]])
    targets = torch.tensor([0, 1])
    # CE by hand: -log(e^2 / (e^2 + 2)) and -log(e^1 / (1 + e + e^3)), averaged over the 2 tokens.
    ce = (-math.log(math.exp(2) / (math.exp(2) + 2)) - math.log(math.e / (1 + math.e + math.exp(3)))) / 2
    scores = torch.tensor([[0.5, 0.0, 3.0], [9.0, 9.0, 9.0]])
    mos = torch.tensor([[0.0, 0.0, 0.0], [float("nan")] * 3])
    # Huber (delta 1) over the row with MOS: 0.5 * 0.5^2, 0, 3 - 0.5 -> mean of 3 dims.
    huber = (0.125 + 0.0 + 2.5) / 3
    parts = sft_loss(logits, targets, scores, mos, torch.tensor([True, False]), SFTLossConfig(ce_weight=0.7, huber_weight=2.0))
    assert parts["ce"].item() == pytest.approx(ce, rel=1e-6)
    assert parts["huber"].item() == pytest.approx(huber, rel=1e-6)
    assert parts["loss"].item() == pytest.approx(0.7 * ce + 2.0 * huber, rel=1e-6)


def test_inactive_term_is_reported_and_adds_only_a_zero_gradient():
    logits, targets = torch.tensor([[2.0, 0.0]], requires_grad=True), torch.tensor([1])
    scores = torch.tensor([[1.0, 1.0, 1.0]], requires_grad=True)
    parts = sft_loss(logits, targets, scores, torch.zeros(1, 3), torch.tensor([True]), SFTLossConfig(), active=("huber",))
    assert parts["loss"].item() == pytest.approx(parts["huber"].item())
    assert parts["ce"].item() > 0 and not parts["ce"].requires_grad
    parts["loss"].backward()
    assert logits.grad is not None and not logits.grad.any()  # reached (DDP needs it), with weight 0


def test_a_batch_without_critique_tokens_has_zero_ce_and_a_finite_gradient():
    logits = torch.zeros(0, 5, requires_grad=True)
    assert critique_ce(logits, torch.zeros(0, dtype=torch.long)).item() == 0.0
    scores = torch.tensor([[0.2, 0.1, 0.0]], requires_grad=True)
    parts = sft_loss(logits, torch.zeros(0, dtype=torch.long), scores, torch.zeros(1, 3), torch.tensor([True]), SFTLossConfig())
    parts["loss"].backward()
    assert torch.isfinite(scores.grad).all() and scores.grad.abs().sum() > 0


def test_unknown_loss_term_raises():
    with pytest.raises(ValueError, match="unknown loss term"):
        sft_loss(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), torch.zeros(1, 3), torch.zeros(1, 3),
                 torch.tensor([True]), SFTLossConfig(), active=("kl",))
