"""RE-Reward fit under FSDP2 (ModelParallelStrategy, two CPU processes on gloo, configs/strategy/fsdp_cpu.yaml)
against one process on the same global batch: 2 ranks x 4 samples vs 1 rank x 8, Huber loss only (per-sample,
so the sharded gradient mean is the one-process gradient). The export, written on rank 0 from sharded weights,
loads on one process and holds the best checkpoint's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ddp_helpers import ddp_fit, max_difference

from ie_eval.lit.callbacks import load_state_dict_safely
from ie_eval.models.reward_model import RewardModel

STEPS = 3
WEIGHT_ATOL = 1e-4  # float reduction order (gloo reduce-scatter vs one batch) through 3 AdamW steps


def fit(out: Path, manifest: Path, processes: int) -> list[dict]:
    per_rank = str(8 // processes)
    return ddp_fit(
        out, "configs/rm/tiny.yaml", processes,
        "--data.init_args.manifest", str(manifest),
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", str(STEPS),
        "--data.init_args.batch_size", per_rank, "--data.init_args.eval_batch_size", per_rank,
        "--model.init_args.head.dropout", "0",
        "--model.init_args.loss.rank_weight", "0", "--model.init_args.loss.plcc_weight", "0",
        overlay="configs/strategy/fsdp_cpu.yaml",
    )


@pytest.fixture(scope="module")
def runs(synth_manifest, tmp_path_factory) -> tuple[Path, list[dict], list[dict]]:
    root = tmp_path_factory.mktemp("fsdp-reward")
    return root, fit(root / "one", synth_manifest, 1), fit(root / "two", synth_manifest, 2)


def test_two_sharded_ranks_end_on_the_one_process_weights(runs):
    _, (one,), (rank0, rank1) = runs
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["global_step"] == rank1["global_step"] == one["global_step"] == STEPS
    assert max_difference(rank0["weights"], rank1["weights"]) == 0.0  # gathered from the same shards
    assert max_difference(one["weights"], rank0["weights"]) < WEIGHT_ATOL
    assert one["moved"] > 10 * WEIGHT_ATOL


def test_the_sharded_export_loads_on_one_process_with_the_best_checkpoint_weights(runs):
    root, _, _ = runs
    run = root / "two" / "run"
    best = load_state_dict_safely(next((run / "checkpoints").glob("best-*.ckpt")))
    model = RewardModel.from_pretrained(run / "export")
    exported = {f"model.{k}": v for k, v in model.state_dict().items()}
    assert {k for k in best if k.startswith("model.")} == set(exported)
    assert all(torch.equal(exported[k], best[k]) for k in exported)
    assert not any(isinstance(v, torch.distributed.tensor.DTensor) for v in best.values())
