"""GRPO advantages and loss: hand-computed values, and TRL's own GRPOTrainer code fed the same tensors."""

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from ie_eval.losses.grpo import group_advantages, grpo_loss, k3_kl, loss_rows, zero_std_groups

EPS = 1e-4


def test_group_advantages_match_a_hand_computation():
    rewards = torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 4.0])  # two prompts, G = 3
    # group 1: mean 2, unbiased std sqrt(((-1)^2 + 0 + 1^2) / 2) = 1
    # group 2: mean 4/3, unbiased std sqrt(((4/3)^2 * 2 + (8/3)^2) / 2) = sqrt(16/3)
    s2 = math.sqrt(16 / 3)
    expected = [-1 / (1 + EPS), 0.0, 1 / (1 + EPS), -(4 / 3) / (s2 + EPS), -(4 / 3) / (s2 + EPS), (8 / 3) / (s2 + EPS)]
    torch.testing.assert_close(group_advantages(rewards, 3), torch.tensor(expected), rtol=0, atol=1e-6)


def test_dr_grpo_advantages_skip_the_std_and_shape_is_kept():
    rewards = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 4.0]])
    expected = torch.tensor([[-1.0, 0.0, 1.0], [-4 / 3, -4 / 3, 8 / 3]])
    torch.testing.assert_close(group_advantages(rewards, 3, scale_by_std=False), expected)


def test_groups_with_equal_rewards_or_of_one_get_zero_advantage():
    assert group_advantages(torch.tensor([5.0, 5.0, 5.0, 5.0]), 2).tolist() == [0.0] * 4
    assert group_advantages(torch.tensor([1.0, 7.0]), 1).tolist() == [0.0, 0.0]


def test_missing_rewards_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        group_advantages(torch.tensor([1.0, float("nan")]), 2)
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(torch.ones(6), 4)


def test_k3_kl_is_zero_at_equal_policies_and_matches_its_formula():
    logp = torch.log(torch.tensor([0.5, 0.5]))
    ref = torch.log(torch.tensor([0.5, 1.0]))
    torch.testing.assert_close(k3_kl(logp, ref), torch.tensor([0.0, 1 - math.log(2)]))


def test_grpo_loss_matches_a_hand_computation():
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    old = torch.log(torch.tensor([[0.25, 0.25]]))  # ratios 2 and 1
    ref = torch.log(torch.tensor([[0.5, 0.5]]))  # k3 KL 0 and 1 - ln 2
    out = grpo_loss(logp, old, ref, torch.tensor([1.0]), torch.ones(1, 2), clip_eps_low=0.2, beta=0.1)
    # token 1: -min(2 * 1, 1.2 * 1) = -1.2; token 2: -1 + 0.1 * (1 - ln 2); token mean of the two
    expected = (-1.2 - 1 + 0.1 * (1 - math.log(2))) / 2
    assert out.loss.item() == pytest.approx(expected, abs=1e-6)
    assert out.policy_loss.item() == pytest.approx(-1.1, abs=1e-6)
    assert out.kl.item() == pytest.approx((1 - math.log(2)) / 2, abs=1e-6)
    assert out.clip_fraction.item() == pytest.approx(0.5) and out.clip_low_fraction.item() == 0.0


def test_grpo_loss_ignores_masked_tokens_and_needs_ref_for_kl():
    logp = torch.tensor([[-1.0, -2.0, -50.0]])
    mask = torch.tensor([[1, 1, 0]])
    a = grpo_loss(logp, None, None, torch.tensor([2.0]), mask)
    b = grpo_loss(logp[:, :2], None, None, torch.tensor([2.0]), mask[:, :2])
    assert a.loss.item() == pytest.approx(b.loss.item()) == pytest.approx(-2.0)
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(logp, None, None, torch.tensor([2.0]), mask, beta=0.1)
    with pytest.raises(ValueError, match="max_completion_length"):
        grpo_loss(logp, None, None, torch.tensor([2.0]), mask, aggregation="dr_grpo")


# --- TRL cross-check ----------------------------------------------------------------------
# (our aggregation, TRL loss_type, our importance_sampling = TRL importance_sampling_level)
TRL_CASES = [
    ("sequence", "grpo", "token"),
    ("token", "bnpo", "token"),
    ("dr_grpo", "dr_grpo", "token"),
    ("sequence", "grpo", "sequence"),  # GSPO
]
MAX_COMPLETION = 7


def _rollout_tensors(seed=0, n=6, length=5):
    generator = torch.Generator().manual_seed(seed)
    logp = -torch.rand(n, length, generator=generator) * 3
    # per-token noise and a per-completion shift: ratios well outside [0.8, 1.28] at both levels
    old = logp + 0.4 * torch.randn(n, length, generator=generator) + 0.6 * torch.randn(n, 1, generator=generator)
    ref = logp + 0.3 * torch.randn(n, length, generator=generator)
    lengths = torch.tensor([5, 3, 1, 4, 0, 2])  # one empty completion
    mask = (torch.arange(length)[None] < lengths[:, None]).long()
    rewards = torch.rand(n, generator=generator)
    return logp, old, ref, mask, group_advantages(rewards, 3)


def _trl_loss(logp, old, ref, mask, advantages, loss_type, level, beta, bias_correction):
    """TRL's `GRPOTrainer._compute_loss`, run for real on a stand-in `self` that serves our per-token log-probs."""
    from trl import GRPOTrainer

    n, length = logp.shape
    stand_in = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *args, **kwargs: (logp, torch.zeros_like(logp), None),
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level=level,
        loss_type=loss_type,
        beta=beta,
        epsilon_low=0.2,
        epsilon_high=0.28,
        args=SimpleNamespace(use_bias_correction_kl=bias_correction, delta=None),
        use_vllm=False,
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1,
        max_completion_length=MAX_COMPLETION,
        _entropy_bonus_enabled=False,
        aux_loss_enabled=False,
        accelerator=SimpleNamespace(reduce=lambda x, reduction: x, gather=lambda x: x, gather_for_metrics=lambda x: x),
        _metrics={"train": defaultdict(list)},
    )
    inputs = {
        "prompt_ids": torch.zeros(n, 2, dtype=torch.long),
        "prompt_mask": torch.ones(n, 2, dtype=torch.long),
        "completion_ids": torch.zeros(n, length, dtype=torch.long),
        "completion_mask": mask,
        "advantages": advantages,
        "old_per_token_logps": old,
        "ref_per_token_logps": ref,
    }
    loss = GRPOTrainer._compute_loss(stand_in, None, inputs)
    return loss, stand_in._metrics["train"]


@pytest.mark.parametrize("aggregation,loss_type,level", TRL_CASES, ids=[f"{c[1]}-{c[2]}" for c in TRL_CASES])
@pytest.mark.parametrize("beta,bias_correction", [(0.0, False), (0.04, False), (0.04, True)])
def test_loss_and_gradient_match_trl(aggregation, loss_type, level, beta, bias_correction):
    pytest.importorskip("trl")
    logp, old, ref, mask, advantages = _rollout_tensors()
    ours_logp = logp.clone().requires_grad_(True)
    trl_logp = logp.clone().requires_grad_(True)
    ours = grpo_loss(
        ours_logp, old, ref, advantages, mask, clip_eps_low=0.2, clip_eps_high=0.28, beta=beta,
        aggregation=aggregation, importance_sampling=level, kl_ratio_weighted=bias_correction,
        max_completion_length=MAX_COMPLETION,
    )
    trl_loss, metrics = _trl_loss(trl_logp, old, ref, mask, advantages, loss_type, level, beta, bias_correction)
    torch.testing.assert_close(ours.loss, trl_loss, rtol=0, atol=1e-6)
    ours.loss.backward()
    trl_loss.backward()
    torch.testing.assert_close(ours_logp.grad, trl_logp.grad, rtol=0, atol=1e-6)
    assert ours.clip_fraction.item() == pytest.approx(metrics["clip_ratio/region_mean"][0], abs=1e-6)
    assert ours.clip_fraction.item() > 0  # the case exercises clipping
    if beta:
        assert ours.kl.item() == pytest.approx(metrics["kl"][0], abs=1e-6)


def test_advantage_std_is_trls_bessel_corrected_nanstd():
    pytest.importorskip("trl")
    from trl.trainer.utils import nanstd

    rewards = torch.rand(4, 5, generator=torch.Generator().manual_seed(1))
    expected = (rewards - rewards.mean(1, keepdim=True)) / (nanstd(rewards, dim=1).unsqueeze(1) + EPS)
    torch.testing.assert_close(group_advantages(rewards.flatten(), 5), expected.flatten(), rtol=0, atol=1e-6)


def test_zero_std_groups_look_at_the_spread_not_the_mean():
    # groups of 3: equal rewards; equal but for 1e-7 float noise; a continuous spread with mean 0
    rewards = torch.tensor([0.4, 0.4, 0.4, 0.2, 0.2 + 1e-7, 0.2, -0.5, 0.0, 0.5])
    assert zero_std_groups(rewards, 3).tolist() == [True, True, False]
    assert zero_std_groups(rewards, 3, tolerance=0.0).tolist() == [True, False, False]


def test_loss_rows_drop_zero_std_groups_and_truncated_completions():
    rewards = torch.tensor([1.0, 1.0, 0.0, 2.0])  # groups of 2: the first has no spread
    finished = torch.tensor([True, True, False, True])
    assert loss_rows(rewards, finished, 2).tolist() == [True, True, True, True]  # both off: everything
    assert loss_rows(rewards, finished, 2, filter_zero_std=True).tolist() == [False, False, True, True]
    assert loss_rows(rewards, finished, 2, mask_truncated=True).tolist() == [True, True, False, True]
    both = loss_rows(rewards, finished, 2, filter_zero_std=True, mask_truncated=True)
    assert both.tolist() == [False, False, False, True]


def test_rows_left_out_of_the_mask_do_not_move_the_loss():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.5], [-3.0, -1.0]], requires_grad=True)
    advantages = torch.tensor([1.0, -1.0, 5.0])
    mask = torch.ones(3, 2)
    kept = mask * torch.tensor([1.0, 1.0, 0.0]).unsqueeze(1)
    full = grpo_loss(logp[:2], None, None, advantages[:2], mask[:2]).loss
    dropped = grpo_loss(logp, None, None, advantages, kept).loss
    assert dropped.item() == pytest.approx(full.item())
    dropped.backward()
    assert logp.grad[2].abs().sum() == 0
