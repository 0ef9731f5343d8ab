"""Reward scoring overlapped with generation inside one GRPO step (`grpo.overlap_scoring_prompts`).

The step's prompts are generated a chunk at a time; as soon as a chunk's completions exist, a worker
thread has the reward model score them (an HTTP request to `serve-rm`, or the in-process model, both
of which release the GIL while they wait or compute) while the trainer generates the next chunk. The
rewards are then assembled over the whole batch exactly as in the serial loop, from the prefetched
scores. Overlapping across steps instead (generating step t + 1 while step t is scored) would sample
from the policy before update t, one step off-policy, and so would not reproduce the serial loop.
With `sampling.seed` set a prompt's completions do not depend on the chunk it is generated in, so the
overlapped step equals the serial one (`tests/rl/test_reward_overlap.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from ie_eval.rl.rewards import RewardSample
from ie_eval.rl.rollout.base import Rollouts, concat_rollouts


def in_callers_autocast(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` run under the calling thread's autocast (thread-local: a worker thread would otherwise score an
    in-process reward model at another precision than the serial step, which runs inside Lightning's)."""
    states = [(device, torch.get_autocast_dtype(device)) for device in ("cuda", "cpu") if torch.is_autocast_enabled(device)]

    def run(*args: Any) -> Any:
        with contextlib.ExitStack() as stack:
            for device, dtype in states:
                stack.enter_context(torch.autocast(device, dtype=dtype))
            return fn(*args)

    return run


def overlapped_rollouts(
    records: Sequence[Any],
    chunk_prompts: int,
    generate: Callable[[range], Rollouts],
    reward_samples: Callable[[Sequence[Any], Rollouts], list[RewardSample]],
    prefetch: Callable[[list[RewardSample]], None],
    pad_token_id: int,
) -> tuple[Rollouts, list[RewardSample], Callable[[], None]]:
    """The batch's rollouts generated `chunk_prompts` prompts at a time, each chunk's reward samples
    handed to `prefetch` on a worker thread as soon as it is generated.

    generate(rows): Rollouts of prompts `rows` (prompt indices local to the chunk). Returns the rollouts
    of all prompts in order, their reward samples (the objects prefetched), and `finish`, which waits
    for the last prefetch (re-raising any error it hit) and must be called before the rewards are read.
    """
    if chunk_prompts < 1:
        raise ValueError(f"chunk_prompts must be >= 1, got {chunk_prompts}")
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reward-prefetch")
    prefetch = in_callers_autocast(prefetch)
    parts, samples, futures = [], [], []
    try:
        for start in range(0, len(records), chunk_prompts):
            rows = range(start, min(start + chunk_prompts, len(records)))
            part = generate(rows)
            chunk_samples = reward_samples([records[i] for i in rows], part)
            futures.append(pool.submit(prefetch, chunk_samples))
            parts.append(part)
            samples.extend(chunk_samples)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise

    def finish() -> None:
        try:
            for future in futures:
                future.result()
        finally:
            pool.shutdown(wait=True)

    return concat_rollouts(parts, pad_token_id), samples, finish
