"""Correlations against scipy, bootstrap intervals against a plain resampling loop."""

import numpy as np
import pytest
from scipy import stats

from ie_eval.metrics.bootstrap import bootstrap_correlations, correlations

DIMS = ("a", "b")


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    truth = rng.integers(1, 6, size=(40, 2)).astype(float)  # ties, as Likert-like truth has
    pred = truth + rng.normal(scale=1.5, size=truth.shape)
    pred[:5, 1] = pred[5, 1]  # ties in the prediction too
    return pred, truth


def test_correlations_match_scipy(data):
    pred, truth = data
    out = correlations(pred, truth, DIMS)
    for d, dim in enumerate(DIMS):
        assert out[dim]["plcc"] == pytest.approx(stats.pearsonr(pred[:, d], truth[:, d]).statistic, abs=1e-12)
        assert out[dim]["srcc"] == pytest.approx(stats.spearmanr(pred[:, d], truth[:, d]).statistic, abs=1e-12)
        assert out[dim]["krcc"] == pytest.approx(stats.kendalltau(pred[:, d], truth[:, d]).statistic, abs=1e-12)
    assert out["mean"]["srcc"] == pytest.approx(np.mean([out[d]["srcc"] for d in DIMS]))


def test_bootstrap_interval_equals_a_plain_scipy_resampling_loop(data):
    pred, truth = data
    out = bootstrap_correlations(pred, truth, DIMS, n_resamples=200, seed=7)
    rows = np.random.default_rng(7).integers(0, len(pred), size=(200, len(pred)))
    srcc = np.array([[stats.spearmanr(pred[r, d], truth[r, d]).statistic for d in range(2)] for r in rows])
    for d, dim in enumerate(DIMS):
        low, high = np.percentile(srcc[:, d], [2.5, 97.5])
        assert out[dim]["srcc"]["low"] == pytest.approx(low, abs=1e-12)
        assert out[dim]["srcc"]["high"] == pytest.approx(high, abs=1e-12)
    mean_low, mean_high = np.percentile(srcc.mean(axis=1), [2.5, 97.5])
    assert out["mean"]["srcc"]["low"] == pytest.approx(mean_low, abs=1e-12)
    assert out["mean"]["srcc"]["high"] == pytest.approx(mean_high, abs=1e-12)
    krcc = [stats.kendalltau(pred[r, 0], truth[r, 0]).statistic for r in rows]
    assert out["a"]["krcc"]["low"] == pytest.approx(np.percentile(krcc, 2.5), abs=1e-12)


def test_bootstrap_is_seeded_and_brackets_the_estimate(data):
    pred, truth = data
    first = bootstrap_correlations(pred, truth, DIMS, n_resamples=100, seed=1)
    assert first == bootstrap_correlations(pred, truth, DIMS, n_resamples=100, seed=1)
    assert first != bootstrap_correlations(pred, truth, DIMS, n_resamples=100, seed=2)
    for name in ("plcc", "srcc", "krcc"):
        block = first["a"][name]
        assert block["low"] < block["value"] < block["high"]


def test_constant_prediction_gives_none_not_a_crash():
    truth = np.arange(10, dtype=float).reshape(5, 2)
    out = bootstrap_correlations(np.ones((5, 2)), truth, DIMS, n_resamples=20)
    assert out["a"]["srcc"] == {"value": None, "low": None, "high": None}


def test_shape_errors_are_explicit():
    with pytest.raises(ValueError, match="expected"):
        correlations(np.ones((5, 3)), np.ones((5, 3)), DIMS)
    with pytest.raises(ValueError, match="at least 2"):
        correlations(np.ones((1, 2)), np.ones((1, 2)), DIMS)
