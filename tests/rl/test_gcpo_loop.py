"""GCPO (Edit-R1) through the GRPO loop: comparison prompts, win-ratio rewards and held-out pairwise accuracy."""

import csv

import torch
from grpo_helpers import grpo_module, trainer

from ie_eval.data.pairwise import COMPARISON_KEY, ROLE_KEY
from ie_eval.rl.comparison_data import ComparisonPromptDataModule


def comparison_data(manifest, **overrides):
    options = {"sources": [f"synth:{manifest.parent}"], "pairs_per_step": 2, "eval_batch_size": 2, "val_pairs": 2,
               **overrides}
    return ComparisonPromptDataModule(**options)


def test_batches_put_the_two_sides_of_each_comparison_next_to_each_other(synth_manifest):
    data = comparison_data(synth_manifest)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    assert len(batch) == 4  # 2 comparisons x (preferred, rejected)
    for preferred, rejected in zip(batch[::2], batch[1::2], strict=True):
        assert preferred.meta[COMPARISON_KEY] == rejected.meta[COMPARISON_KEY]
        assert (preferred.meta[ROLE_KEY], rejected.meta[ROLE_KEY]) == ("preferred", "rejected")
        assert sum(preferred.mos) > sum(rejected.mos) and preferred.instruction == rejected.instruction
        assert preferred.critique is None and preferred.source_id == rejected.source_id
    held_out = {r.source_id for b in data.val_dataloader() for r in b}
    assert not held_out & {p.first.source_id for p in data.splits["train"]}


def test_gcpo_steps_log_the_win_ratio_and_held_out_pairwise_accuracy(tmp_path, synth_manifest, tiny_critic_dir):
    torch.manual_seed(0)
    module = grpo_module(tiny_critic_dir, {}, rewards=[{"name": "win_ratio", "weight": 1.0}], beta=0.0,
                         scale_rewards=False, aux_weight=0.0, aux_weak_weight=0.0)
    run = trainer(tmp_path, max_steps=2, val_check_interval=2)
    run.fit(module, datamodule=comparison_data(synth_manifest))
    assert run.global_step == 2
    with next(tmp_path.rglob("metrics.csv")).open() as handle:
        rows = list(csv.DictReader(handle))
    steps = [r for r in rows if r.get("train/reward_win_ratio_mean")]
    assert len(steps) == 2 and all(0.0 <= float(r["train/reward_win_ratio_mean"]) <= 1.0 for r in steps)
    val = [r for r in rows if r.get("val/reward_mean")][-1]
    assert 0.0 <= float(val["val/head_pair_accuracy"]) <= 1.0
    # 8 new tokens never finish a critique: no parsed score, so no comparison is decided by the text
    assert float(val["val/text_pair_accuracy"]) == 0.0
