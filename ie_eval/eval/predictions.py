"""predictions.jsonl: the per-record output of `ie-eval eval`, written by it and read back by `ie-eval report`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ie_eval.eval.evaluate import Prediction


def prediction_row(p: Prediction, dims: Sequence[str]) -> dict:
    """One predictions.jsonl row: sample, task type, prediction and truth per dim, generated text."""
    truth = p.truth(dims)
    return {
        "sample_id": p.record.sample_id, "pair_id": p.record.pair_id, "task_type": p.record.task_type,
        "pred": dict(zip(dims, p.pred, strict=True)) if p.pred is not None else None,
        "truth": dict(zip(dims, truth, strict=True)) if truth is not None else None,
        "group_id": p.record.meta.get("group_id"), "pointwise": p.pointwise, "text": p.text,
    }


def row_pred(row: Mapping, dims: Sequence[str]) -> list[float] | None:
    """The prediction of a predictions.jsonl row back as a list in `dims` order (None: unscored)."""
    pred = row["pred"]
    return None if pred is None else [pred[d] for d in dims]


def write_predictions(predictions: Sequence[Prediction], dims: Sequence[str], path: Path) -> None:
    """predictions.jsonl: one `prediction_row` per prediction."""
    with path.open("w", encoding="utf-8") as handle:
        for p in predictions:
            handle.write(json.dumps(prediction_row(p, dims), ensure_ascii=False) + "\n")


def read_predictions(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(dims, preds (N, D), truths (N, D)) of the pointwise rows of predictions.jsonl that have both."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r.get("pointwise", True) and r["pred"] is not None and r["truth"] is not None]
    dims = list(rows[0]["pred"]) if rows else []
    preds = np.array([[r["pred"][d] for d in dims] for r in rows], dtype=float).reshape(len(rows), len(dims))
    truths = np.array([[r["truth"][d] for d in dims] for r in rows], dtype=float).reshape(len(rows), len(dims))
    return dims, preds, truths
