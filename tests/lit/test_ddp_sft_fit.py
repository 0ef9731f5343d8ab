"""Critic SFT fit under real DDP (two CPU processes on gloo, configs/strategy/ddp_cpu.yaml) against one
process on the same global batch: 2 ranks x 4 samples vs 1 rank x 8, generation off.

The Huber term is a per-sample mean over equal shards, so DDP's gradient mean is the one-process
gradient. The CE term is a mean over the batch's critique tokens, and ranks hold different token
counts: the mean of per-rank token-means is not the global token-mean, so the weights are compared
with CE weighted 0 (still computed, still reaching the LM head), and the CE + Huber gap is in
docs/distributed.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ddp_helpers import assert_disjoint_shards, ddp_fit, max_difference

STEPS = 3
WEIGHT_ATOL = 1e-4  # float reduction order (gloo all-reduce vs one batch) through 3 AdamW steps
HUBER_ONLY = ["--model.init_args.loss.ce_weight", "0"]


def fit(out: Path, manifest: Path, processes: int, *extra: str, global_batch: int = 8, steps: int = STEPS) -> list[dict]:
    """The tiny critic SFT fit (first phase: score+CoT, CE + Huber) on `processes` ranks."""
    per_rank = str(global_batch // processes)
    return ddp_fit(
        out, "configs/sft/tiny.yaml", processes,
        "--data.init_args.manifest", str(manifest),
        "--data.init_args.score_only_manifest", str(manifest.parent / "pairs.jsonl"),
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", str(steps),
        "--data.init_args.batch_size", per_rank, "--data.init_args.eval_batch_size", per_rank,
        "--model.init_args.head.dropout", "0",  # per-rank dropout masks cannot match one process's
        "--model.init_args.generation.every_n_epochs", "0",  # greedy generation is most of validation's cost
        *extra,
    )


@pytest.fixture(scope="module")
def huber_runs(synth_manifest, tmp_path_factory) -> tuple[list[dict], list[dict]]:
    root = tmp_path_factory.mktemp("ddp-sft")
    return fit(root / "one", synth_manifest, 1, *HUBER_ONLY), fit(root / "two", synth_manifest, 2, *HUBER_ONLY)


def test_two_ranks_train_and_validate_on_disjoint_equal_shards_of_the_one_process_batches(huber_runs):
    (one,), (rank0, rank1) = huber_runs
    assert_disjoint_shards(one, rank0, rank1, STEPS, per_rank=4)


def test_a_per_sample_loss_ends_two_ranks_on_the_one_process_weights(huber_runs):
    (one,), (rank0, rank1) = huber_runs
    assert rank0["global_step"] == rank1["global_step"] == one["global_step"] == STEPS
    assert max_difference(rank0["weights"], rank1["weights"]) == 0.0  # DDP keeps the replicas identical
    assert max_difference(one["weights"], rank0["weights"]) < WEIGHT_ATOL
    assert one["moved"] > 10 * WEIGHT_ATOL  # the weights trained: matching is not both runs standing still
    assert one["without_grad"] == rank0["without_grad"] == []  # the LM head, weighted 0, still got its gradient


def test_logged_losses_and_head_correlations_are_reduced_over_ranks(huber_runs):
    (one,), (rank0, rank1) = huber_runs
    for rank in (rank0, rank1):  # every rank logs the reduced value, equal to the one process's
        metrics = rank["metrics"]
        for name in ("val/loss", "val/huber", "train/huber"):
            assert metrics[name] == pytest.approx(one["metrics"][name], abs=1e-5), name
        for name in ("val/mean_srcc", "val/mean_plcc"):
            assert metrics[name] == pytest.approx(one["metrics"][name], abs=1e-4), name
        # The global step's critique tokens: summed over ranks, not rank 0's share.
        assert metrics["train/ce_tokens"] == one["metrics"]["train/ce_tokens"] > 0


def test_a_huber_only_phase_on_score_only_batches_still_reaches_the_lm_head(synth_manifest, tmp_path):
    """No critique tokens on any rank and CE switched off: the untied LM head would get no gradient and
    DDP (find_unused_parameters off) would fail on the next step; sft_loss joins it with weight 0."""
    phases = "[{name: scores, epochs: [1, 1], pools: [score_only], losses: [huber]}]"
    rank0, rank1 = fit(tmp_path / "two", synth_manifest, 2, "--data.init_args.phases", phases,
                       "--trainer.limit_val_batches", "1", global_batch=4, steps=2)
    assert rank0["global_step"] == rank1["global_step"] == 2
    assert rank0["metrics"]["train/ce_tokens"] == 0.0
    assert rank0["without_grad"] == rank1["without_grad"] == []
    assert max_difference(rank0["weights"], rank1["weights"]) == 0.0
