"""Pairwise preference losses (EditReward) against hand-computed values and independent references."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from ie_eval.losses.pairwise import (
    PairwiseLossConfig,
    bt_ties_loss,
    pairwise_loss,
    probit_loss,
    uncertainty_loss_gauss_hermite,
    uncertainty_loss_monte_carlo,
)
from ie_eval.models.heads import fuse_gaussian_heads


def expected_neg_log_sigmoid(mean: float, std: float) -> float:
    """-E[log sigmoid(z)], z ~ N(mean, std^2), by adaptive quadrature (scipy)."""
    def integrand(z):
        return -np.log(1 / (1 + np.exp(-z))) * stats.norm.pdf(z, mean, std)

    return integrate.quad(integrand, mean - 12 * std, mean + 12 * std)[0]


def test_bt_and_probit_match_hand_computed_values():
    mu = torch.tensor([[1.0, 0.0]])
    log_sigma = torch.zeros(1, 2)  # sigma 1 each: the difference has std sqrt(2)
    first = torch.tensor([1.0])
    bt = pairwise_loss(mu, log_sigma, first, PairwiseLossConfig(kind="bt"))
    assert bt.item() == pytest.approx(math.log(1 + math.exp(-1.0)), abs=1e-6)
    probit = pairwise_loss(mu, log_sigma, first, PairwiseLossConfig(kind="probit"))
    assert probit.item() == pytest.approx(-stats.norm.logcdf(1 / math.sqrt(2)), abs=1e-6)
    assert probit_loss(torch.tensor([0.0]), torch.tensor([3.0])).item() == pytest.approx(math.log(2), abs=1e-6)


def test_the_label_orients_the_pair_and_ties_are_left_out():
    mu, log_sigma = torch.tensor([[0.0, 2.0]]), torch.zeros(1, 2)
    config = PairwiseLossConfig(kind="bt")
    second_preferred = pairwise_loss(mu, log_sigma, torch.tensor([0.0]), config)
    assert second_preferred.item() == pytest.approx(math.log(1 + math.exp(-2.0)), abs=1e-6)
    mixed = pairwise_loss(torch.tensor([[0.0, 2.0], [5.0, -5.0]]), torch.zeros(2, 2), torch.tensor([0.0, 0.5]), config)
    assert mixed.item() == pytest.approx(second_preferred.item())  # the tie adds nothing
    only_ties = pairwise_loss(mu.requires_grad_(), log_sigma, torch.tensor([0.5]), config)
    assert only_ties.item() == 0.0 and only_ties.requires_grad


def test_gauss_hermite_matches_quadrature_and_monte_carlo_within_its_error():
    mean = torch.tensor([0.8, -0.3, 2.0], dtype=torch.float64)
    std = torch.tensor([0.5, 1.7, 3.0], dtype=torch.float64)
    exact = [expected_neg_log_sigmoid(m, s) for m, s in zip(mean.tolist(), std.tolist(), strict=True)]
    gauss_hermite = uncertainty_loss_gauss_hermite(mean, std, nodes=64)
    assert gauss_hermite.tolist() == pytest.approx(exact, abs=1e-6)
    draws = 200_000
    generator = torch.Generator().manual_seed(0)
    monte_carlo = uncertainty_loss_monte_carlo(mean, std, samples=draws, generator=generator)
    # 4 standard errors of the Monte Carlo mean (per-draw std of -log sigmoid(z), estimated by quadrature)
    for m, s, mc, gh in zip(mean.tolist(), std.tolist(), monte_carlo.tolist(), gauss_hermite.tolist(), strict=True):
        z = np.random.default_rng(1).normal(m, s, 100_000)
        spread = np.std(np.log1p(np.exp(-z)))
        assert abs(mc - gh) < 4 * spread / math.sqrt(draws)


def test_uncertainty_loss_is_the_expectation_and_reaches_sigma_by_reparameterization():
    mu = torch.tensor([[0.5, 0.0]], requires_grad=True)
    log_sigma = torch.tensor([[0.0, 0.0]], requires_grad=True)
    config = PairwiseLossConfig(uncertainty_method="gauss_hermite")
    loss = pairwise_loss(mu, log_sigma, torch.tensor([1.0]), config)
    assert loss.item() == pytest.approx(expected_neg_log_sigmoid(0.5, math.sqrt(2)), abs=1e-5)
    loss.backward()
    assert mu.grad[0, 0] < 0 and mu.grad[0, 1] > 0  # raise the preferred mu, lower the other
    assert log_sigma.grad.abs().sum() > 0  # sigma is learned through the expectation
    mc = pairwise_loss(mu, log_sigma, torch.tensor([1.0]), PairwiseLossConfig(mc_samples=50_000),
                       generator=torch.Generator().manual_seed(0))
    assert mc.item() == pytest.approx(loss.item(), abs=0.01)


def test_rao_kupper_ties_are_a_proper_three_outcome_likelihood():
    delta, k = torch.tensor([-2.0, -0.4, 0.0, 0.7, 3.0]), 5.0
    win = torch.exp(-bt_ties_loss(delta, torch.zeros(5, dtype=torch.bool), k))
    loss_ = torch.exp(-bt_ties_loss(-delta, torch.zeros(5, dtype=torch.bool), k))
    tie = torch.exp(-bt_ties_loss(delta, torch.ones(5, dtype=torch.bool), k))
    assert (win + loss_ + tie).tolist() == pytest.approx([1.0] * 5, abs=1e-6)
    # at equal scores: P(win) = 1 / (1 + k), P(tie) = (k^2 - 1) / (1 + k)^2
    at_zero = bt_ties_loss(torch.tensor([0.0, 0.0]), torch.tensor([False, True]), k)
    assert at_zero.tolist() == pytest.approx([math.log(6.0), math.log(36 / 24)], abs=1e-6)
    ties = pairwise_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([0.5]), PairwiseLossConfig(kind="bt_ties"))
    assert ties.item() == pytest.approx(math.log(1.5), abs=1e-6)


def test_head_fusions_follow_editreward():
    mu, log_sigma = torch.tensor([[1.0, 3.0]]), torch.log(torch.tensor([[3.0, 4.0]]))
    mean_mu, mean_ls = fuse_gaussian_heads(mu, log_sigma, "mean")
    assert mean_mu.item() == 2.0 and mean_ls.exp().item() == pytest.approx(math.sqrt(12.0))
    min_mu, min_ls = fuse_gaussian_heads(mu, log_sigma, "min")
    assert min_mu.item() == 1.0 and min_ls.exp().item() == pytest.approx(3.0)
    sum_mu, sum_ls = fuse_gaussian_heads(mu, log_sigma, "sum")
    assert sum_mu.item() == 4.0 and sum_ls.exp().item() == pytest.approx(5.0)  # variances add: 9 + 16
    with pytest.raises(ValueError, match="fusion"):
        fuse_gaussian_heads(mu, log_sigma, "max")


def test_bad_configs_and_shapes_are_refused():
    with pytest.raises(ValueError, match="unknown pairwise loss"):
        PairwiseLossConfig(kind="hinge")
    with pytest.raises(ValueError, match="ties_k"):
        PairwiseLossConfig(ties_k=1.0)
    with pytest.raises(ValueError, match=r"\(P, 2\)"):
        pairwise_loss(torch.zeros(3), torch.zeros(3), torch.zeros(3))


@pytest.mark.parametrize("delta", [-2.0, -0.3, 0.0, 0.4, 3.0])
def test_only_probit_rewards_a_wider_sigma_on_a_misordered_pair(delta):
    """-log sigmoid is convex, so by Jensen the uncertainty loss grows with sigma whatever the sign of
    mu_A - mu_B: on its own it drives sigma to 0. The probit likelihood lets sigma grow where the
    preferred edit scores lower, which is what makes sigma a confidence."""
    log_sigma = torch.zeros(1, 2, requires_grad=True)
    mu = torch.tensor([[delta, 0.0]])
    label = torch.tensor([1.0])
    pairwise_loss(mu, log_sigma, label, PairwiseLossConfig(uncertainty_method="gauss_hermite")).backward()
    assert log_sigma.grad.sum() > 0
    log_sigma.grad = None
    pairwise_loss(mu, log_sigma, label, PairwiseLossConfig(kind="probit")).backward()
    assert (log_sigma.grad.sum() < 0) == (delta < 0)
