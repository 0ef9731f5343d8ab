"""Run a scorer on a benchmark and compute every number `results.json` holds.

Pointwise: items whose prediction is None (unparsed generation) are excluded from the
correlations and counted (`parse_failures`, `parse_failure_rate` = failures / items).
Preference: a candidate's scalar is the mean of the scorer's dims (the paper's overall score
for ImagenHub); a group with an unscored candidate is excluded and counted. On the synthetic
benchmark, results also hold the noise ceiling of the scored items (SRCC of construction truth vs
target, what a perfect scorer reaches) and, for generated critiques, their factuality.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ie_eval.data.phased import record_facts
from ie_eval.data.records import CRITIQUE_DIMS, MOS_DIMS, OVERALL_DIMS, EditRecord, overall_mos
from ie_eval.data.synth.ceiling import ceiling_of_records
from ie_eval.eval.benchmarks import Benchmark
from ie_eval.eval.peer_results import json_safe, peer_pointwise, peer_preference
from ie_eval.eval.predictions import row_pred
from ie_eval.eval.scorer_base import ScoreOutput, Scorer
from ie_eval.metrics.bootstrap import bootstrap_correlations, srcc_rows
from ie_eval.metrics.factuality import Factuality
from ie_eval.metrics.preference import TiePolicy, preference_accuracy
from ie_eval.progress import bars_off, track

# Fewest items of a task type for its SRCC to be reported.
MIN_TASK_ITEMS = 3


@dataclass
class Prediction:
    """One scored record: truth and prediction per scorer dim (prediction None = unparsed)."""

    record: EditRecord
    pred: list[float] | None
    text: str | None = None
    pointwise: bool = False  # part of the pointwise view (else only a preference candidate)

    def truth(self, dims: Sequence[str]) -> list[float] | None:
        if tuple(dims) == OVERALL_DIMS:
            overall = overall_mos(self.record)
            return None if overall is None else [overall]
        if set(dims) <= set(MOS_DIMS) and self.record.mos is not None:
            return [self.record.mos[MOS_DIMS.index(d)] for d in dims]
        if set(dims) <= set(CRITIQUE_DIMS) and self.record.critique_scores is not None:
            return [self.record.critique_scores[CRITIQUE_DIMS.index(d)] for d in dims]
        return None


def score_benchmark(
    scorer: Scorer, bench: Benchmark, done: Mapping[str, Mapping] | None = None, chunk_size: int | None = None,
    on_scored: Callable[[list[Prediction]], None] | None = None,
) -> tuple[list[Prediction], dict[str, Prediction], dict]:
    """Score every record either view needs once; returns (pointwise predictions, by sample_id, timing).

    done: predictions.jsonl rows of an interrupted run by sample_id; their records are not scored again.
    chunk_size: records per `scorer.score` call (default all at once), each chunk's predictions passed
    to `on_scored` as it finishes (`ie-eval eval` appends them to its partial predictions file).
    """
    done = done or {}
    pointwise = bench.pointwise(scorer.dims)
    pointwise_ids = {r.sample_id for r in pointwise}
    wanted = {r.sample_id: r for r in pointwise}
    if not scorer.needs_critique:
        wanted |= {r.sample_id: r for g in bench.groups for r in g.records}
    by_id = {key: Prediction(record, row_pred(done[key], scorer.dims), done[key].get("text"), key in pointwise_ids)
             for key, record in wanted.items() if key in done}
    todo = [record for key, record in wanted.items() if key not in done]
    started = time.perf_counter()
    for chunk in score_chunks(scorer, todo, chunk_size):
        for prediction in chunk:
            prediction.pointwise = prediction.record.sample_id in pointwise_ids
            by_id[prediction.record.sample_id] = prediction
        if on_scored is not None:
            on_scored(chunk)
    seconds = time.perf_counter() - started
    by_id = {key: by_id[key] for key in wanted}  # the benchmark's order, resumed or not
    timing = {"scored_records": len(todo), "resumed_records": len(wanted) - len(todo),
              "score_seconds": round(seconds, 2), "seconds_per_record": round(seconds / len(todo), 4) if todo else None}
    return [by_id[r.sample_id] for r in pointwise], by_id, timing


def score_chunks(scorer: Scorer, records: Sequence[EditRecord], chunk_size: int | None) -> Iterator[list[Prediction]]:
    """Predictions of `records`, `chunk_size` at a time (all at once when None), under one progress bar."""
    if not records:
        return
    if chunk_size is None:
        yield predictions_of(records, scorer.score(records))
        return
    starts = range(0, len(records), chunk_size)
    for start in track(starts, f"scoring {scorer.spec.split(':')[0]}"):
        chunk = records[start : start + chunk_size]
        with bars_off():  # the scorer's own bar would restart for every chunk
            output = scorer.score(chunk)
        yield predictions_of(chunk, output)


def predictions_of(records: Sequence[EditRecord], output: ScoreOutput) -> list[Prediction]:
    texts = output.texts if output.texts is not None else [None] * len(records)
    return [Prediction(r, pred, text) for r, pred, text in zip(records, output.scores, texts, strict=True)]


def pointwise_results(predictions: Sequence[Prediction], dims: Sequence[str], n_resamples: int, seed: int) -> dict:
    """Correlations with bootstrap CIs, per-task SRCC and the parse-failure accounting."""
    scored = [p for p in predictions if p.pred is not None]
    failures = len(predictions) - len(scored)
    out: dict = {
        "n_items": len(predictions), "n_scored": len(scored), "parse_failures": failures,
        "parse_failure_rate": failures / len(predictions) if predictions else None,
        "metrics": None, "per_task_srcc": {},
    }
    if len(scored) < 2:
        out["note"] = f"{len(scored)} scored item(s): correlations need at least 2"
        return out
    preds = np.array([p.pred for p in scored], dtype=np.float64)
    truths = np.array([p.truth(dims) for p in scored], dtype=np.float64)
    out["metrics"] = bootstrap_correlations(preds, truths, dims, n_resamples=n_resamples, seed=seed)
    out["bootstrap"] = {"n_resamples": n_resamples, "seed": seed, "level": 0.95}
    tasks: dict[str, list[int]] = {}
    for index, p in enumerate(scored):
        tasks.setdefault(p.record.task_type or "unknown", []).append(index)
    for task in sorted(tasks):
        rows = tasks[task]
        if len(rows) < MIN_TASK_ITEMS:
            continue
        values = srcc_rows(preds[rows].T, truths[rows].T)
        out["per_task_srcc"][task] = {"n": len(rows), **{d: _json(v) for d, v in zip(dims, values, strict=True)}}
    return out


def preference_results(bench: Benchmark, by_id: dict[str, Prediction], dims: Sequence[str], policy: TiePolicy) -> dict:
    """Pairwise and K-way accuracy on the overall ranks, and per dim where per-dim ranks exist."""
    complete, excluded = [], 0
    for group in bench.groups:
        preds = [by_id[r.sample_id].pred for r in group.records]
        if any(p is None for p in preds):
            excluded += 1
        else:
            complete.append((group, np.asarray(preds, dtype=np.float64)))
    out: dict = {"n_groups": len(bench.groups), "excluded_groups": excluded, "tie_policy": policy.as_dict(),
                 "overall": None, "per_dim": {}}
    if not complete:
        out["note"] = "no group with every candidate scored"
        return out
    out["overall"] = preference_accuracy([(p.mean(axis=1), g.ranks) for g, p in complete], policy)
    for index, dim in enumerate(dims):
        if all(dim in bench.dim_ranks.get(g.group_id, {}) for g, _ in complete):  # ("overall" has none)
            groups = [(p[:, index], bench.dim_ranks[g.group_id][dim]) for g, p in complete]
            out["per_dim"][dim] = preference_accuracy(groups, policy)
    return out


def evaluate(scorer: Scorer, bench: Benchmark, policy: TiePolicy | None = None, n_resamples: int = 1000,
             seed: int = 0, **scoring) -> tuple[dict, list[Prediction]]:
    """results.json content and the predictions (for plots and predictions.jsonl).

    scoring: `score_benchmark`'s done / chunk_size / on_scored (resuming and incremental writes)."""
    policy = policy or bench.tie_policy
    pointwise, by_id, timing = score_benchmark(scorer, bench, **scoring)
    results: dict = {"scorer": scorer.info(), "bench": {"spec": bench.spec, "kind": bench.kind}, "timing": timing}
    results["pointwise"] = pointwise_results(pointwise, scorer.dims, n_resamples, seed) if pointwise else None
    use_groups = bench.groups and not scorer.needs_critique
    results["preference"] = preference_results(bench, by_id, scorer.dims, policy) if use_groups else None
    results["peer"] = json_safe({
        "pointwise": peer_pointwise(pointwise, scorer.dims) if pointwise else None,
        "preference": peer_preference(bench, by_id) if use_groups else None,
    })
    generated = [p for p in by_id.values() if p.text is not None]
    if scorer.generative:
        failed = sum(p.pred is None for p in by_id.values())
        results["generation"] = {"n_generated": len(generated), "parse_failures": failed,
                                 "parse_failure_rate": failed / len(by_id) if by_id else None}
        results["generation"] |= factuality_results(generated)
    if pointwise:
        target = "mos" if set(scorer.dims) <= set(MOS_DIMS) else "critique_scores"
        ceiling = ceiling_of_records([p.record for p in pointwise], target)
        results["noise_ceiling"] = {d: _json(ceiling[d]) for d in scorer.dims if d in ceiling} or None
    return results, list(by_id.values())


def factuality_results(generated: Sequence[Prediction]) -> dict:
    """Factuality of generated critiques against the records' synthetic facts ({} without facts)."""
    rows = [(p.text, record_facts(p.record)) for p in generated]
    rows = [(text, facts) for text, facts in rows if facts]
    if not rows:
        return {}
    metric = Factuality()
    metric.update([t for t, _ in rows], [f for _, f in rows])
    return {f"{k}": _json(float(v)) for k, v in metric.compute().items()} | {"factuality_n": len(rows)}


def _json(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
