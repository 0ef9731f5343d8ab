"""Rollout engines (`hf`, `vllm`) behind one interface, and teacher-forced log-probs of their completions."""

from ie_eval.rl.rollout.base import RolloutEngine, Rollouts, SamplingConfig
from ie_eval.rl.rollout.engines import ENGINES, build_rollout_engine
from ie_eval.rl.rollout.logprobs import (
    completion_logprobs,
    completion_logprobs_and_entropy,
    frozen_copy,
    reference_mode,
    repeat_prompts,
)

__all__ = [
    "ENGINES",
    "RolloutEngine",
    "Rollouts",
    "SamplingConfig",
    "build_rollout_engine",
    "completion_logprobs",
    "completion_logprobs_and_entropy",
    "frozen_copy",
    "reference_mode",
    "repeat_prompts",
]
