"""The rollout engines by name: `build_rollout_engine("hf" | "vllm", policy, **options)`."""

from __future__ import annotations

from typing import Any

from ie_eval.rl.rollout.base import RolloutEngine

ENGINES: tuple[str, ...] = ("hf", "vllm")


def build_rollout_engine(name: str, model: Any, **options: Any) -> RolloutEngine:
    """The named engine ("hf" or "vllm") around a CriticModel policy; `options` go to its constructor."""
    if name == "hf":
        from ie_eval.rl.rollout.hf import HFRolloutEngine

        return HFRolloutEngine(model, **options)
    if name == "vllm":
        from ie_eval.rl.rollout.vllm import VLLMRolloutEngine

        return VLLMRolloutEngine(model, **options)
    raise ValueError(f"unknown rollout engine {name!r}; choose one of {ENGINES}")
