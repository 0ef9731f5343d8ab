"""Correlation metrics against scipy.stats."""

import numpy as np
import pytest
import torch
from scipy import stats

from ie_eval.metrics.correlation import ScoreCorrelations


def test_correlations_match_scipy_with_ties_across_batches():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, size=(60, 3)).astype(np.float64)  # many ties
    pred = target + rng.normal(0, 1.5, size=target.shape)
    pred[:5, 1] = pred[0, 1]  # ties in predictions too
    metric = ScoreCorrelations(["a", "b", "c"])
    for chunk in np.array_split(np.arange(60), 7):
        metric.update(torch.tensor(pred[chunk], dtype=torch.float32).double(), torch.tensor(target[chunk]))
    got = metric.compute()
    for index, dim in enumerate("abc"):
        assert got[f"{dim}_plcc"].item() == pytest.approx(stats.pearsonr(pred[:, index], target[:, index])[0], abs=1e-6)
        assert got[f"{dim}_srcc"].item() == pytest.approx(stats.spearmanr(pred[:, index], target[:, index])[0], abs=1e-6)
        assert got[f"{dim}_krcc"].item() == pytest.approx(stats.kendalltau(pred[:, index], target[:, index])[0], abs=1e-6)
    mean_srcc = np.mean([stats.spearmanr(pred[:, i], target[:, i])[0] for i in range(3)])
    assert got["mean_srcc"].item() == pytest.approx(mean_srcc, abs=1e-6)


def test_correlations_reset_between_epochs():
    metric = ScoreCorrelations(["a"])
    metric.update(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[1.0], [2.0], [3.0]]))
    assert metric.compute()["a_srcc"].item() == pytest.approx(1.0, abs=1e-5)
    metric.reset()
    metric.update(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[3.0], [2.0], [1.0]]))
    assert metric.compute()["a_srcc"].item() == pytest.approx(-1.0, abs=1e-5)


def test_correlations_reject_wrong_shape():
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        ScoreCorrelations(["a", "b", "c"]).update(torch.zeros(4, 2), torch.zeros(4, 2))
