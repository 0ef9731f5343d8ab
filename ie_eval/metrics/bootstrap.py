"""PLCC / SRCC / KRCC per dimension and their mean, with percentile-bootstrap 95% intervals.

    PLCC = cov(x, y) / (std(x) std(y))
    SRCC = PLCC(rank(x), rank(y))          (average ranks for ties)
    KRCC = Kendall tau-b = (C - D) / sqrt((C + D + T_x)(C + D + T_y))

The bootstrap resamples items (rows, all dims together, so the mean's interval accounts for
the dims' dependence) with replacement `n_resamples` times from a generator seeded by `seed`;
the interval is the [(1 - level) / 2, (1 + level) / 2] percentiles of the resampled statistic,
skipping resamples where it is undefined (a constant column).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import kendalltau, rankdata

CORRELATIONS: tuple[str, ...] = ("plcc", "srcc", "krcc")


def plcc_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of x (R, N) with the same row of y; NaN for a constant row."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (xc * yc).sum(-1) / np.where(denominator > 0, denominator, 1.0), np.nan)


def srcc_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman correlation row by row: PLCC of average ranks."""
    return plcc_rows(rankdata(x, axis=-1), rankdata(y, axis=-1))


def krcc_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-b row by row (scipy per row; NaN for a constant row)."""
    out = np.empty(x.shape[0])
    for index in range(x.shape[0]):
        if np.ptp(x[index]) == 0 or np.ptp(y[index]) == 0:
            out[index] = np.nan
        else:
            out[index] = kendalltau(x[index], y[index]).statistic
    return out


_ROW_FUNCTIONS = {"plcc": plcc_rows, "srcc": srcc_rows, "krcc": krcc_rows}


def correlations(preds: np.ndarray, targets: np.ndarray, dims: Sequence[str]) -> dict[str, dict[str, float]]:
    """{dim: {plcc, srcc, krcc}} and {"mean": ...} of (N, D) predictions against (N, D) targets."""
    preds, targets = _checked(preds, targets, dims)
    out: dict[str, dict[str, float]] = {dim: {} for dim in dims}
    for name, function in _ROW_FUNCTIONS.items():
        values = function(preds.T, targets.T)  # (D,)
        for dim, value in zip(dims, values, strict=True):
            out[dim][name] = float(value)
    out["mean"] = {name: float(np.mean([out[d][name] for d in dims])) for name in CORRELATIONS}
    return out


def bootstrap_correlations(
    preds: np.ndarray, targets: np.ndarray, dims: Sequence[str], n_resamples: int = 1000, seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, dict[str, float | None]]]:
    """{dim or "mean": {corr: {"value", "low", "high"}}}: point estimate and bootstrap interval."""
    preds, targets = _checked(preds, targets, dims)
    point = correlations(preds, targets, dims)
    rows = np.random.default_rng(seed).integers(0, len(preds), size=(n_resamples, len(preds)))  # (R, N)
    alpha = 100 * (1 - level) / 2
    out: dict[str, dict[str, dict[str, float | None]]] = {key: {} for key in [*dims, "mean"]}
    for name, function in _ROW_FUNCTIONS.items():
        per_dim = np.stack([function(preds[rows, d], targets[rows, d]) for d in range(len(dims))])  # (D, R)
        for key, samples in [*zip(dims, per_dim, strict=True), ("mean", per_dim.mean(axis=0))]:
            finite = samples[np.isfinite(samples)]
            low, high = (np.percentile(finite, [alpha, 100 - alpha]) if len(finite) else (np.nan, np.nan))
            out[key][name] = {"value": _clean(point[key][name]), "low": _clean(low), "high": _clean(high)}
    return out


def _checked(preds: np.ndarray, targets: np.ndarray, dims: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    preds, targets = np.asarray(preds, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    if preds.shape != targets.shape or preds.ndim != 2 or preds.shape[1] != len(dims):
        raise ValueError(f"expected (N, {len(dims)}) preds and targets, got {preds.shape} and {targets.shape}")
    if preds.shape[0] < 2:
        raise ValueError(f"need at least 2 items for correlations, got {preds.shape[0]}")
    return preds, targets


def _clean(value: float) -> float | None:
    """JSON-friendly: NaN becomes None."""
    value = float(value)
    return value if np.isfinite(value) else None
