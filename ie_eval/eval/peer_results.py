"""The peers' metrics of one `ie-eval eval` run (`metrics/peer.py`), beside ours in results.json / results.md.

Pointwise, on the overall score (the mean of the scorer's dims against the mean truth): IE-Critic-R1's
logistic PLCC, SRCC and MainScore under both parse-failure rules (dropped, as IE-Critic-R1 does;
counted), per dim with failures dropped, and EditReward's per-prompt SRCC (ImagenHub). Preference, on
the groups' overall score: EditReward's K=2 tie-calibrated, K=3 / 4 and pooled accuracies, strict
K-way accuracy, and EditScore's strict accuracy macro-averaged over task types.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ie_eval.metrics.peer import (
    editreward_accuracies,
    editscore_accuracy,
    main_score,
    per_prompt_srcc,
    with_parse_failures,
)

if TYPE_CHECKING:
    from ie_eval.eval.benchmarks import Benchmark
    from ie_eval.eval.evaluate import Prediction


def json_safe(value: object) -> object:
    """The same structure with NaN / inf floats as None (results.json is strict JSON)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _overall(values: Sequence[float] | None) -> float | None:
    return None if values is None else float(np.mean(values))


def peer_pointwise(predictions: Sequence[Prediction], dims: Sequence[str]) -> dict:
    truths = [_overall(p.truth(dims)) for p in predictions]
    preds = [_overall(p.pred) for p in predictions]
    scored = [(p, t) for p, t in zip(predictions, truths, strict=True) if p.pred is not None]
    per_dim = {}
    for index, dim in enumerate(dims):
        if len(scored) >= 2:
            per_dim[dim] = main_score([p.pred[index] for p, _ in scored], [p.truth(dims)[index] for p, _ in scored])
    prompts = [p.record.instruction for p, _ in scored]
    return {
        "ie_critic_r1": with_parse_failures(preds, truths) | {"per_dim": per_dim},
        "imagenhub": per_prompt_srcc([_overall(p.pred) for p, _ in scored], [t for _, t in scored], prompts),
    }


def peer_preference(bench: Benchmark, by_id: dict[str, Prediction]) -> dict:
    groups, pairs = [], []
    for group in bench.groups:
        preds = [by_id[r.sample_id].pred for r in group.records]
        if any(p is None for p in preds):
            continue
        scores = [float(np.mean(p)) for p in preds]
        groups.append((scores, group.ranks))
        for i in range(group.k):
            for j in range(group.k):
                if group.ranks[i] < group.ranks[j]:
                    pairs.append((scores[i], scores[j], group.records[i].task_type or "unknown"))
    return {"editreward": editreward_accuracies(groups) if groups else {},
            "editscore": editscore_accuracy(pairs) if pairs else {}}
