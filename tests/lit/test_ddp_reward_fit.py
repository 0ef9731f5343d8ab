"""RE-Reward fit under real DDP (two CPU processes on gloo, configs/strategy/ddp_cpu.yaml) against one
process on the same global batch: 2 ranks x 4 samples vs 1 rank x 8.

On the Huber-only loss (per-sample, averaged: DDP's gradient mean over equal shards is the one-process
gradient) the two runs end with the same weights. The full loss is not decomposable over ranks: its
ranking and PLCC terms pair each rank's own batch with a FIFO queue (which every rank fills with the
global batch), so the full-loss DDP run is checked for its queues and for ranks in step, not for the
one-process weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ddp_helpers import assert_disjoint_shards, ddp_fit, max_difference

DECOMPOSABLE = ["--model.init_args.loss.rank_weight", "0", "--model.init_args.loss.plcc_weight", "0"]
STEPS = 3
WEIGHT_ATOL = 1e-4  # float reduction order (gloo all-reduce vs one batch) through 3 AdamW steps


def fit(out: Path, manifest: Path, processes: int, *extra: str) -> list[dict]:
    """Run the tiny RE-Reward fit on `processes` ranks (global batch 8); each rank's record and weights."""
    per_rank = str(8 // processes)
    return ddp_fit(
        out, "configs/rm/tiny.yaml", processes,
        "--data.init_args.manifest", str(manifest),
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", str(STEPS),
        "--data.init_args.batch_size", per_rank, "--data.init_args.eval_batch_size", per_rank,
        "--model.init_args.head.dropout", "0",  # per-rank dropout masks cannot match one process's
        *extra,
    )


@pytest.fixture(scope="module")
def huber_runs(synth_manifest, tmp_path_factory) -> tuple[list[dict], list[dict]]:
    root = tmp_path_factory.mktemp("ddp-reward")
    return fit(root / "one", synth_manifest, 1, *DECOMPOSABLE), fit(root / "two", synth_manifest, 2, *DECOMPOSABLE)


def test_two_ranks_train_and_validate_on_disjoint_equal_shards_of_the_one_process_batches(huber_runs):
    (one,), (rank0, rank1) = huber_runs
    assert_disjoint_shards(one, rank0, rank1, STEPS, per_rank=4)


def test_a_decomposable_loss_ends_two_ranks_on_the_one_process_weights(huber_runs):
    (one,), (rank0, rank1) = huber_runs
    assert rank0["global_step"] == rank1["global_step"] == one["global_step"] == STEPS
    assert max_difference(rank0["weights"], rank1["weights"]) == 0.0  # DDP keeps the replicas identical
    assert max_difference(one["weights"], rank0["weights"]) < WEIGHT_ATOL
    assert one["moved"] > 10 * WEIGHT_ATOL  # the weights trained: matching is not both runs standing still


def test_logged_metrics_are_reduced_over_ranks(huber_runs):
    (one,), (rank0, rank1) = huber_runs
    for rank in (rank0, rank1):  # every rank logs the reduced value, equal to the one process's
        metrics = rank["metrics"]
        assert metrics["val/mean_srcc"] == pytest.approx(one["metrics"]["val/mean_srcc"], abs=1e-4)
        assert metrics["val/loss"] == pytest.approx(one["metrics"]["val/loss"], abs=1e-5)
        assert metrics["train/loss"] == pytest.approx(one["metrics"]["train/loss"], abs=1e-5)
        assert metrics["train/huber"] == pytest.approx(one["metrics"]["train/huber"], abs=1e-5)


def rows(queue: torch.Tensor) -> list[tuple[float, ...]]:
    return sorted(tuple(row) for row in queue.tolist())


def test_the_full_loss_keeps_ranks_in_step_with_the_one_process_queue(synth_manifest, tmp_path):
    """Each rank queues the global batch: both ranks hold the one-process run's queued targets (a queue
    pushed rank-locally would be replaced by rank 0's in DDP's buffer broadcast, losing rank 1's rows)."""
    (one,), (rank0, rank1) = fit(tmp_path / "one", synth_manifest, 1), fit(tmp_path / "two", synth_manifest, 2)
    assert rank0["global_step"] == rank1["global_step"] == STEPS
    assert max_difference(rank0["weights"], rank1["weights"]) == 0.0
    assert rank0["metrics"]["train/loss"] == rank1["metrics"]["train/loss"]
    for name in ("rank_queue", "plcc_queue"):
        queued = one["weights"][f"loss_fn.{name}.target"]
        assert queued.shape == (STEPS * 8, 3)
        for rank in (rank0, rank1):
            assert rows(rank["weights"][f"loss_fn.{name}.target"]) == rows(queued)
