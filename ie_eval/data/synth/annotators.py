"""Simulated raters: each has a bias, a scale use and a noise level, and gives 1..5 ratings.

Rating of item i by annotator j on a dim with truth t in [0, 1]:
    r_ij = clip(round(3 + scale_j * (4 t - 2) + bias_j + noise_j * z_ij), 1, 5),  z ~ N(0, 1)
Per-annotator bias and scale are what ECDF-probit normalization (normalize.py) removes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnnotatorPanel:
    """Parameters of each simulated annotator, index-aligned with `ids`."""

    ids: tuple[str, ...]
    bias: tuple[float, ...]
    scale: tuple[float, ...]
    noise: tuple[float, ...]


def make_panel(count: int, rng: np.random.Generator) -> AnnotatorPanel:
    """`count` annotators: bias ~ N(0, 0.35) points, scale ~ U(0.75, 1.1), noise ~ U(0.35, 0.75)."""
    if count < 1:
        raise ValueError(f"need at least one annotator, got {count}")
    bias = rng.normal(0.0, 0.35, count)
    scale = rng.uniform(0.75, 1.1, count)
    noise = rng.uniform(0.35, 0.75, count)

    def rounded(values: np.ndarray) -> tuple[float, ...]:
        return tuple(round(float(v), 4) for v in values)

    ids = tuple(f"a{j + 1}" for j in range(count))
    return AnnotatorPanel(ids, rounded(bias), rounded(scale), rounded(noise))


def rate(panel: AnnotatorPanel, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Integer ratings (items, dims, annotators) in 1..5 for truth (items, dims) in [0, 1]."""
    truth = np.asarray(truth, dtype=np.float64)
    if truth.ndim != 2:
        raise ValueError(f"truth must be (items, dims), got shape {truth.shape}")
    bias, scale, noise = (np.asarray(v, dtype=np.float64) for v in (panel.bias, panel.scale, panel.noise))
    z = rng.normal(0.0, 1.0, truth.shape + (len(panel.ids),))
    latent = 3.0 + scale * (4.0 * truth[..., None] - 2.0) + bias + noise * z
    return np.clip(np.rint(latent), 1, 5).astype(np.int64)


def ratings_by_dim(
    panel: AnnotatorPanel, dims: Sequence[str], ratings: np.ndarray
) -> dict[str, dict[str, int]]:
    """One item's ratings (dims, annotators) as the record schema's ``{dim: {annotator_id: rating}}``."""
    return {dim: {aid: int(ratings[d, j]) for j, aid in enumerate(panel.ids)} for d, dim in enumerate(dims)}
