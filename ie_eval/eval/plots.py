"""PNG plots of evaluation results (matplotlib, Agg backend): scatter, per-task bars, comparisons, curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def scatter_plot(preds: np.ndarray, truths: np.ndarray, dims: Sequence[str], path: Path, title: str) -> Path:
    """Prediction vs truth, one panel per dim; preds and truths are (N, D)."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(dims), figsize=(4 * len(dims), 4), squeeze=False)
    for index, (axis, dim) in enumerate(zip(axes[0], dims, strict=True)):
        axis.scatter(truths[:, index], preds[:, index], s=6, alpha=0.5)
        axis.set_xlabel(f"target {dim}")
        axis.set_ylabel(f"predicted {dim}")
        axis.set_title(dim)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def grouped_bars(values: Mapping[str, Mapping[str, float | None]], path: Path, title: str, ylabel: str) -> Path:
    """One group of bars per outer key (x axis), one bar per inner key (legend); None draws nothing."""
    plt = _pyplot()
    groups = list(values)
    series = list(_first_keys(values))
    width = 0.8 / max(1, len(series))
    figure, axis = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) * max(1, len(series)) * 0.5 + 2), 4))
    positions = np.arange(len(groups))
    for index, name in enumerate(series):
        heights = [values[g].get(name) for g in groups]
        heights = [np.nan if h is None else h for h in heights]
        axis.bar(positions + (index - (len(series) - 1) / 2) * width, heights, width, label=name)
    axis.set_xticks(positions, groups, rotation=30, ha="right")
    axis.axhline(0.0, color="black", linewidth=0.6)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    if len(series) > 1:
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _first_keys(values: Mapping[str, Mapping[str, object]]) -> dict[str, None]:
    """Inner keys in first-seen order (a dict as an ordered set)."""
    return {k: None for inner in values.values() for k in inner}


def curves_plot(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: Path, title: str) -> Path:
    """One panel per named (x, y) series, e.g. reward and response length against step."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(series), figsize=(5 * len(series), 3.6), squeeze=False)
    for axis, (name, (x, y)) in zip(axes[0], series.items(), strict=True):
        axis.plot(x, y, linewidth=1.2)
        axis.set_xlabel("step")
        axis.set_title(name)
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
