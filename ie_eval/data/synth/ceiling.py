"""The benchmark's noise ceiling: how well the annotated targets themselves track the construction truth.

Targets are ECDF-probit normalized ratings of biased, noisy simulated annotators, so even a model
that knew the truth exactly would reach SRCC(truth, target) and no more. Computed per dimension
when the benchmark is written (stored in `synth_config.json`), and for any split from the
records' `meta` truth (what a results table shows beside its numbers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from ie_eval.data.records import CRITIQUE_DIMS, MOS_DIMS, EditRecord

TRUTH_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "mos": ("truth_mos", MOS_DIMS),
    "critique_scores": ("truth_critique", CRITIQUE_DIMS),
}
CEILING_KEY = "noise_ceiling"


def srcc_per_dim(truth: np.ndarray, target: np.ndarray, dims: Sequence[str]) -> dict[str, float]:
    """{dim: SRCC(truth[:, d], target[:, d])} (NaN with fewer than 3 rows)."""
    if len(truth) < 3:
        return {dim: float("nan") for dim in dims}
    return {dim: float(spearmanr(truth[:, d], target[:, d]).statistic) for d, dim in enumerate(dims)}


def ceiling_of_records(records: Sequence[EditRecord], target: str) -> dict[str, float]:
    """Per-dim SRCC between `meta` truth and the records' `target` ("mos": one row per pair;
    "critique_scores": one per record); {} when the records carry no construction truth."""
    truth_key, dims = TRUTH_KEYS[target]
    rows: dict[str, tuple[Sequence[float], Sequence[float]]] = {}
    for record in records:
        truth, value = record.meta.get(truth_key), getattr(record, target)
        if truth is None or value is None:
            return {}
        rows[record.pair_id if target == "mos" else record.sample_id] = (truth, value)
    if not rows:
        return {}
    truth_rows, target_rows = zip(*rows.values(), strict=True)
    return srcc_per_dim(np.asarray(truth_rows, dtype=float), np.asarray(target_rows, dtype=float), dims)


def benchmark_ceiling(
    truth_mos: Sequence[Sequence[float]], mos: Sequence[Sequence[float]],
    truth_critique: Sequence[Sequence[float]], critique_scores: Sequence[Sequence[float]],
) -> dict[str, float]:
    """Per-dim ceiling of a whole benchmark: MOS dims over pairs, critique dims over records."""
    ceiling = srcc_per_dim(np.asarray(truth_mos, float), np.asarray(mos, float), MOS_DIMS)
    ceiling |= srcc_per_dim(np.asarray(truth_critique, float), np.asarray(critique_scores, float), CRITIQUE_DIMS)
    return {dim: round(value, 4) for dim, value in ceiling.items()}


def read_noise_ceiling(manifest: str | Path) -> dict[str, float]:
    """The ceiling stored beside a synthetic manifest (`synth_config.json`), or {} for other data."""
    config = Path(manifest).parent / "synth_config.json"
    if not config.is_file():
        return {}
    return dict(json.loads(config.read_text(encoding="utf-8")).get(CEILING_KEY, {}))


def ceiling_line(ceiling: Mapping[str, float], dims: Sequence[str]) -> str:
    """"noise ceiling (SRCC truth vs target): logicality 0.871, ..." for the dims present."""
    parts = [f"{dim} {ceiling[dim]:.3f}" for dim in dims if dim in ceiling]
    return "noise ceiling (SRCC of construction truth vs annotated target): " + ", ".join(parts) if parts else ""
