"""CritiqueMetrics on two real gloo processes whose shards differ in what they generated: every rank
computes the one-process value on the union (a rank-local decision to skip a metric, or a list state
gathered one tensor at a time, would hang or crash the collective)."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ie_eval.data.critique_format import ParsedCritique
from ie_eval.data.records import MOS_DIMS
from ie_eval.metrics.correlation import ScoreCorrelations
from ie_eval.metrics.critique import CritiqueMetrics, updated_anywhere
from ie_eval.metrics.factuality import Factuality

MOS = torch.tensor([[0.1, 0.5, 0.9], [0.4, 0.2, 0.3], [0.8, 0.7, 0.1], [0.6, 0.9, 0.5]], dtype=torch.float64)
HEAD = torch.tensor([[0.2, 0.4, 0.7], [0.5, 0.1, 0.2], [0.6, 0.8, 0.3], [0.3, 0.6, 0.4]])
PARSED = [ParsedCritique(scores=(2.0, 3.0, 4.0)), ParsedCritique(scores=(3.0, 1.0, 2.0)),
          ParsedCritique(scores=(5.0, 4.0, 1.0)), ParsedCritique(scores=None)]
TEXTS = ["the red circle is now blue", "the star looks sharp", "colors are washed out", "unreadable"]
REFERENCES = ["the red circle is blue", "the star is sharp", "the colours look washed out", None]
SHARDS = (slice(0, 3), slice(3, 4))  # rank 1: one unparsed critique, no reference


def fill(metrics: CritiqueMetrics, rows: slice) -> None:
    ones = torch.ones(len(MOS[rows]), dtype=torch.bool)
    metrics.update_scores(HEAD[rows], MOS[rows], ones)
    metrics.update_texts(PARSED[rows], MOS[rows], ones, TEXTS[rows], REFERENCES[rows])


def rank_compute(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        metrics = CritiqueMetrics()
        fill(metrics, SHARDS[rank])
        out[rank] = {k: float(v) for k, v in metrics.compute().items()}
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ranks_with_uneven_generations_all_compute_the_one_process_metrics():
    whole = CritiqueMetrics()
    fill(whole, slice(0, 4))
    expected = {k: float(v) for k, v in whole.compute().items()}
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(rank_compute, args=(free_port(), out), nprocs=2, join=True)
        ranks = dict(out)
    assert expected["generated"] == 4 and 0 < expected["format_rate"] < 1 and "rouge1" in expected
    for rank in (0, 1):
        assert ranks[rank].keys() == expected.keys()
        for name, value in expected.items():
            assert ranks[rank][name] == pytest.approx(value, abs=1e-6, nan_ok=True), (rank, name)


def rank_updated_anywhere(rank: int, port: int, out: dict) -> None:
    """GRPO's held-out metrics: only rank 0's prompts had MOS and parsed critiques."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        text, factuality = ScoreCorrelations(MOS_DIMS), Factuality()
        if rank == 0:
            text.update(HEAD[:3].double(), MOS[:3])
        updated = updated_anywhere({"text": text, "factuality": factuality})
        out[rank] = {"updated": updated, **{k: float(v) for k, v in text.compute().items()}}
    finally:
        dist.destroy_process_group()


def test_a_metric_one_rank_never_updated_is_computed_on_both_without_hanging():
    whole = ScoreCorrelations(MOS_DIMS)
    whole.update(HEAD[:3].double(), MOS[:3])
    expected = {k: float(v) for k, v in whole.compute().items()}
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(rank_updated_anywhere, args=(free_port(), out), nprocs=2, join=True)
        ranks = dict(out)
    for rank in (0, 1):
        assert ranks[rank]["updated"] == {"text": True, "factuality": False}
        for name, value in expected.items():
            assert ranks[rank][name] == pytest.approx(value, nan_ok=True)
