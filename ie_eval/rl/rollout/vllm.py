"""`VLLMRolloutEngine`: the colocated vLLM engine (optional `vllm` extra).

Not implemented yet. The intended design (issue 6): vLLM colocated with the trainer, LoRA weights
pushed to it after each optimizer step (`sync_weights`), its memory released during the update.
Until then, choosing it fails at construction with an error that says what to do, and never
falls back silently to another engine.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from ie_eval.rl.rollout.base import RolloutEngine, Rollouts, SamplingConfig

INSTALL_HINT = "pip install 'ie-eval[vllm]'"


class MissingExtraError(ImportError):
    """An optional dependency of the chosen component is not installed."""


class VLLMRolloutEngine(RolloutEngine):
    def __init__(self, model: Any, **options: Any) -> None:
        if importlib.util.find_spec("vllm") is None:
            raise MissingExtraError(
                f"rollout engine 'vllm' needs vLLM, which is not installed: {INSTALL_HINT} (a CUDA machine), "
                "or set rollout: hf"
            )
        raise NotImplementedError(
            "rollout engine 'vllm' is not implemented yet in ie-eval (weight sync and memory release are "
            "missing); set rollout: hf"
        )

    def generate(
        self, prompt_batch: dict[str, Any], group_size: int, sampling: SamplingConfig, with_logprobs: bool = False
    ) -> Rollouts:  # pragma: no cover - the constructor never returns
        raise NotImplementedError
