"""Reward scoring overlapped with generation (`grpo.overlap_scoring_prompts`) gives the serial step's results."""

import csv
import threading

import pytest
import torch
from grpo_helpers import grpo_module, prompt_data, trainer

from ie_eval.rl.objective import GRPOConfig
from ie_eval.rl.rollout.base import Rollouts, concat_rollouts
from ie_eval.rl.terms import ReRewardTerm


def test_concatenated_rollouts_keep_rows_in_order_and_offset_prompt_indices():
    def part(rows, length, first):
        return Rollouts(
            completion_ids=torch.arange(first, first + rows * length).view(rows, length),
            completion_mask=torch.ones(rows, length, dtype=torch.long), texts=[f"t{first + i}" for i in range(rows)],
            prompt_index=torch.arange(rows // 2).repeat_interleave(2), group_size=2,
            finished=torch.ones(rows, dtype=torch.bool), sampling_logp=torch.full((rows, length), -1.0))

    joined = concat_rollouts([part(2, 3, 0), part(4, 1, 100)], pad_token_id=-7)
    assert joined.prompt_index.tolist() == [0, 0, 1, 1, 2, 2]
    assert joined.completion_ids.tolist()[1] == [3, 4, 5] and joined.completion_ids.tolist()[2] == [100, -7, -7]
    assert joined.completion_mask[2].tolist() == [1, 0, 0] and joined.sampling_logp[2].tolist() == [-1.0, 0.0, 0.0]
    assert joined.texts == ["t0", "t1", "t100", "t101", "t102", "t103"] and joined.lengths.tolist() == [3, 3, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="group sizes"):
        concat_rollouts([part(2, 1, 0), Rollouts(**{**vars(part(2, 1, 0)), "group_size": 1})], 0)


def test_a_chunk_size_below_one_is_refused():
    with pytest.raises(ValueError, match="overlap_scoring_prompts"):
        GRPOConfig(overlap_scoring_prompts=0)


def logged_steps(root):
    with next(root.rglob("metrics.csv")).open() as handle:
        return [row for row in csv.DictReader(handle) if row.get("train/reward_mean")]


def test_overlapped_scoring_trains_the_same_steps_as_the_serial_loop(tmp_path, synth_manifest, tiny_critic_dir,
                                                                      tiny_reward_dir):
    results = {}
    for name, options in (("serial", {}), ("overlapped", {"overlap_scoring_prompts": 1})):
        torch.manual_seed(0)
        module = grpo_module(tiny_critic_dir, {"ckpt": str(tiny_reward_dir)}, sampling_seed=11, **options)
        module.setup("fit")
        initial = {k: v.detach().clone() for k, v in module.model.state_dict().items()}
        (term,) = [t for _, _, t in module.rewards.components if isinstance(t, ReRewardTerm)]
        threads, score = [], term.score
        def recorded(items, score=score, threads=threads, **options):
            threads.append(threading.current_thread().name)
            return score(items, **options)

        term.score = recorded
        run = trainer(tmp_path / name, max_steps=2)
        run.fit(module, datamodule=prompt_data(synth_manifest))
        weights = {k: v.detach().clone() for k, v in module.model.state_dict().items()}
        results[name] = (logged_steps(tmp_path / name), weights, threads)
    (serial_rows, serial_weights, serial_threads), (rows, weights, threads) = results["serial"], results["overlapped"]
    # Serial: one scoring call per step in the trainer's thread. Overlapped: one per prompt (2 per step) on
    # the worker, and nothing left to score afterwards.
    assert not any(t.startswith("reward-prefetch") for t in serial_threads) and len(serial_threads) == 2
    assert len(threads) == 4 and all(t.startswith("reward-prefetch") for t in threads)
    assert len(rows) == len(serial_rows) == 2
    for key in ("train/reward_mean", "train/reward_std", "train/reward_re_reward_mean", "train/loss", "train/kl",
                "train/response_length"):
        for overlapped, serial in zip(rows, serial_rows, strict=True):
            assert float(overlapped[key]) == pytest.approx(float(serial[key]), rel=1e-4, abs=1e-6), key
    assert float(serial_rows[-1]["train/reward_std"]) > 0  # the rewards differ within the batch
    # Each tensor's two-step update, overlapped against serial, relative to its size. The rewards agree only
    # to float rounding (the reward model scores 2 items a call instead of 4, with other padding), and AdamW's
    # first steps are near sign(gradient), so compare whole updates, not the largest element.
    worst = 0.0
    for key, value in serial_weights.items():
        update = value - initial[key]
        if update.norm() > 0:
            worst = max(worst, float((weights[key] - initial[key] - update).norm() / update.norm()))
    assert worst < 1e-3, worst


def test_the_worker_scores_under_the_callers_autocast():
    from concurrent.futures import ThreadPoolExecutor

    from ie_eval.rl.overlap import in_callers_autocast

    def state():
        return torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    with ThreadPoolExecutor(1) as pool:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            wrapped = in_callers_autocast(state)
            bare = pool.submit(state).result()
        assert bare[0] is False  # autocast is thread-local
        assert pool.submit(wrapped).result() == (True, torch.bfloat16)
