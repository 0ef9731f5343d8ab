"""Turn raw annotator ratings into training targets (paper section 3.2.2, eqs. 1-3).

Per annotator j, over the N_j items j rated on one dimension, with c_j(s) ratings equal to s:
    F_j(s) = #{ratings <= s} / N_j                     (raw percentile, eq. 1)
    p_j(s) = F_j(s) - c_j(s) / (2 N_j)                 (mid-point smoothing, eq. 2)
An item's target is Phi^-1(clip(mean_j p_j(s_ij), eps, 1 - eps)) over the annotators who
rated it (eq. 3). `zscore` (per-annotator standardization, averaged) and `raw` (mean rating)
are the ablation alternatives.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Literal

import numpy as np
from scipy.stats import norm

from ie_eval.data.records import CRITIQUE_DIMS, MOS_DIMS, EditRecord

Method = Literal["ecdf_probit", "zscore", "raw"]
METHODS: tuple[str, ...] = ("ecdf_probit", "zscore", "raw")


def midpoint_ecdf(ratings: Sequence[float]) -> dict[float, float]:
    """Mid-point smoothed percentile p(s) = F(s) - c(s) / 2N for each distinct rating s."""
    values = np.asarray(ratings, dtype=np.float64)
    if values.size == 0:
        return {}
    distinct, counts = np.unique(values, return_counts=True)
    cumulative = np.cumsum(counts) / values.size
    return {float(s): float(f - c / (2 * values.size)) for s, f, c in zip(distinct, cumulative, counts, strict=True)}


def _per_annotator_transform(
    items: Sequence[Mapping[str, float]], method: Method
) -> dict[str, dict[float, float]]:
    """For each annotator, a map rating -> transformed value learned from all that annotator's ratings."""
    by_annotator: dict[str, list[float]] = defaultdict(list)
    for item in items:
        for annotator, rating in item.items():
            by_annotator[annotator].append(float(rating))
    transforms: dict[str, dict[float, float]] = {}
    for annotator, ratings in by_annotator.items():
        if method == "ecdf_probit":
            transforms[annotator] = midpoint_ecdf(ratings)
        elif method == "zscore":
            values = np.asarray(ratings)
            std = values.std()
            # An annotator who always gives the same rating carries no ranking information.
            scale = std if std > 0 else 1.0
            transforms[annotator] = {float(s): float((s - values.mean()) / scale) for s in np.unique(values)}
        else:
            transforms[annotator] = {float(s): float(s) for s in np.unique(ratings)}
    return transforms


def normalize_ratings(
    items: Sequence[Mapping[str, float]], method: Method = "ecdf_probit", eps: float = 1e-3
) -> np.ndarray:
    """Targets (len(items),) for one dimension from per-item ``{annotator: rating}`` maps.

    Raises ValueError for an item nobody rated or an unknown method.
    """
    if method not in METHODS:
        raise ValueError(f"unknown score normalization '{method}'; choose one of {METHODS}")
    transforms = _per_annotator_transform(items, method)
    targets = np.empty(len(items), dtype=np.float64)
    for index, item in enumerate(items):
        if not item:
            raise ValueError(f"item {index} has no annotator ratings")
        targets[index] = np.mean([transforms[a][float(r)] for a, r in item.items()])
    if method == "ecdf_probit":
        targets = norm.ppf(np.clip(targets, eps, 1.0 - eps))
    return targets


def _rated_units(
    records: Sequence[EditRecord], dims: Sequence[str], unit_of: Callable[[EditRecord], str]
) -> dict[str, list[int]]:
    """Indices of records rated on all `dims`, grouped by the rated unit (a pair for MOS, a
    sample for critiques); every record of a unit must carry the same ratings."""
    units: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        if record.ratings and all(record.ratings.get(d) for d in dims):
            units.setdefault(unit_of(record), []).append(index)
    for unit, indices in units.items():
        first = {d: dict(records[indices[0]].ratings[d]) for d in dims}
        for index in indices[1:]:
            if {d: dict(records[index].ratings[d]) for d in dims} != first:
                raise ValueError(f"records {indices[0]} and {index} of '{unit}' carry different ratings for {dims}")
    return units


def normalize_records(
    records: Sequence[EditRecord], method: Method = "ecdf_probit", eps: float = 1e-3
) -> list[EditRecord]:
    """Replace `mos` / `critique_scores` by normalized targets wherever a record has raw ratings.

    A record gets a new triplet only if it has ratings for all three dims of that triplet;
    statistics are pooled over the records passed in (pass the whole split, not one batch).
    MOS ratings are counted once per pair, not once per critique record of the pair, so a
    pair with many critiques does not weigh more in its annotators' percentiles.
    """
    out = list(records)
    for dims, attribute, unit_of in (
        (MOS_DIMS, "mos", lambda r: r.pair_id),
        (CRITIQUE_DIMS, "critique_scores", lambda r: r.sample_id),
    ):
        units = _rated_units(out, dims, unit_of)
        if not units:
            continue
        representatives = [indices[0] for indices in units.values()]
        columns = [normalize_ratings([out[i].ratings[d] for i in representatives], method, eps) for d in dims]
        for position, indices in enumerate(units.values()):
            triplet = tuple(float(column[position]) for column in columns)
            for record_index in indices:
                out[record_index] = replace(out[record_index], **{attribute: triplet})
    return out
