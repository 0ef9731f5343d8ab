"""`VLLMRolloutEngine`: rollouts from a vLLM engine colocated with the trainer (optional `vllm` extra).

NEVER EXECUTED: no machine available to ie-eval has vLLM (it cannot be installed on the dev box,
and the lent GPU image has none). Written against vLLM's public offline API; the pure pieces
(output -> `Rollouts`, weight names and merged values, the export) are tested without vLLM, the
engine itself only by tests/rl/test_vllm_engine.py where vLLM and CUDA are present.

One engine per training process, on the trainer's GPU:

- construction: the policy backbone (LoRA merged, see `weights.py`) and its processor are written
  to a temporary directory (or `model_dir` is used as is) and loaded by `vllm.LLM(...,
  enable_sleep_mode=True)`. The export holds one full copy of the backbone's weights in memory
  while it is written (the merged tensors), and on disk until the engine is closed.
- `generate`: the collator's rendered prompt texts and resized [source, edited] images go to
  `LLM.generate` as multimodal prompts, `n = G` samples each (greedy: one, repeated G times);
  outputs become right-padded `Rollouts`, exactly as the HF engine's.
- `sync_weights` (after each rollout batch's optimizer steps): the policy's merged weights are
  streamed, tensor by tensor, into the engine's model through `LLM.apply_model(model.load_weights)`
  (vLLM's documented hook; the engine core runs in-process, `VLLM_ENABLE_V1_MULTIPROCESSING=0`, so
  nothing is serialized), else through the engine's driver worker (older vLLM, as TRL does); then
  the prefix cache is reset.
- memory: with `enable_sleep_mode`, the engine sleeps (level 1: KV cache freed, weights copied to
  CPU RAM) after every `generate` and at construction, so the policy update has the GPU; it wakes
  its weights to load new ones and its KV cache to generate.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ie_eval.rl.rollout.base import (
    RolloutEngine,
    Rollouts,
    SamplingConfig,
    completion_mask,
    multimodal_token_ids,
)
from ie_eval.rl.rollout.weights import merged_weights

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'ie-eval[vllm]'"
IMAGES_PER_PROMPT = 2  # source and edited
SLEEP_LEVEL = 1  # weights backed up in CPU RAM: a wake-up without a weight sync still has valid weights
IN_PROCESS_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"


class MissingExtraError(ImportError):
    """An optional dependency of the chosen component is not installed."""


def require_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise MissingExtraError(
            f"rollout engine 'vllm' needs vLLM, which is not installed: {INSTALL_HINT} (a CUDA machine), "
            "or set rollout: hf"
        )


class VLLMRolloutEngine(RolloutEngine):
    """Samples from a colocated vLLM copy of the policy; `sync_weights` keeps the copy current.

    model: a CriticModel (backbone, processor, stop_token_ids, pad_token_id).
    gpu_memory_utilization: fraction of GPU memory vLLM takes (weights + KV cache) while awake.
    max_model_len: longest prompt + completion, in tokens. dtype: vLLM's weight / compute dtype.
    enable_sleep_mode: free the KV cache and move the weights to CPU between generations.
    model_dir: a directory vLLM can load (config, weights, processor) holding the policy's current
        weights; None exports the policy to a temporary directory.
    """

    def __init__(
        self,
        model: Any,
        gpu_memory_utilization: float = 0.3,
        max_model_len: int = 8192,
        enable_sleep_mode: bool = True,
        dtype: str = "auto",
        model_dir: str | None = None,
    ) -> None:
        require_vllm()  # before any export work
        import vllm

        self.model = model
        self.enable_sleep_mode = enable_sleep_mode
        self.suppressed = multimodal_token_ids(model.processor)
        self._export_dir: tempfile.TemporaryDirectory | None = None
        if model_dir is None:
            self._export_dir = tempfile.TemporaryDirectory(prefix="ie-eval-vllm-")
            model_dir = str(export_backbone(model, self._export_dir.name))
        use_in_process_engine()
        options: dict[str, Any] = {
            "model": str(model_dir), "enable_sleep_mode": enable_sleep_mode,
            "gpu_memory_utilization": gpu_memory_utilization, "max_model_len": max_model_len,
            "limit_mm_per_prompt": {"image": IMAGES_PER_PROMPT}, "dtype": dtype,
        }
        if "logprobs_mode" in engine_arg_names(vllm):
            options["logprobs_mode"] = "processed_logprobs"  # after temperature / top-p, as `Rollouts` defines
        self.llm = vllm.LLM(**options)
        self.awake: set[str] = {"weights", "kv_cache"}
        self.sleep()

    # --- sampling -------------------------------------------------------------------------
    def generate(
        self, prompt_batch: dict[str, Any], group_size: int, sampling: SamplingConfig, with_logprobs: bool = False,
        seeds: Sequence[int] | None = None,
    ) -> Rollouts:
        prompts = vllm_prompts(prompt_batch)
        if seeds is None:  # follows torch's seeding
            first = int(torch.randint(0, 2**31 - 1 - len(prompts) * group_size, ()))
            seeds = [first + p * group_size for p in range(len(prompts))]
        elif len(seeds) != len(prompts):
            raise ValueError(f"generate: {len(seeds)} seeds for {len(prompts)} prompts")
        # vLLM's per-request seed draws a request's samples from its own generator, whatever the batch.
        params = [self.sampling_params(sampling, group_size, with_logprobs, int(seed) % 2**31) for seed in seeds]
        self.wake(("weights", "kv_cache"))
        try:
            outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        finally:
            self.sleep()
        return rollouts_from_outputs(
            outputs, group_size, self.model.stop_token_ids, self.model.pad_token_id,
            self.model.processor.tokenizer, with_logprobs, device=prompt_batch["input_ids"].device,
        )

    def sampling_params(self, sampling: SamplingConfig, group_size: int, with_logprobs: bool, seed: int) -> Any:
        """vLLM `SamplingParams` for one prompt: G samples (greedy: 1, repeated), the policy's stop tokens."""
        from vllm import SamplingParams

        decoding: dict[str, Any] = {"n": 1, "temperature": 0.0}
        if not sampling.greedy:
            decoding = {"n": group_size, "temperature": sampling.temperature, "top_p": sampling.top_p,
                        "top_k": sampling.top_k or -1, "seed": seed}
        return SamplingParams(
            **decoding, max_tokens=sampling.max_new_tokens, stop_token_ids=list(self.model.stop_token_ids),
            logprobs=0 if with_logprobs else None,  # 0: the sampled token's log-prob only
            logit_bias={token: -100.0 for token in self.suppressed} or None,  # never sample image placeholders
        )

    # --- weights and memory ---------------------------------------------------------------
    @torch.no_grad()
    def sync_weights(self) -> None:
        """Load the policy's current (merged) weights into the engine, then drop its prefix cache."""
        self.wake(("weights",))
        load_weights(self.llm, merged_weights(self.model.backbone))
        self.llm.reset_prefix_cache()

    def wake(self, tags: Sequence[str]) -> None:
        """Reallocate the engine's `tags` memory ("weights", "kv_cache") if it sleeps."""
        missing = [tag for tag in tags if tag not in self.awake]
        if not self.enable_sleep_mode or not missing:
            return
        if "tags" in inspect.signature(self.llm.wake_up).parameters:
            self.llm.wake_up(tags=missing)
            self.awake.update(missing)
        else:  # older vLLM wakes everything at once
            self.llm.wake_up()
            self.awake.update(("weights", "kv_cache"))

    def sleep(self) -> None:
        """Free the KV cache and move the weights to CPU RAM (sleep level 1), if sleep mode is on."""
        if self.enable_sleep_mode and self.awake:
            self.llm.sleep(level=SLEEP_LEVEL)
            self.awake.clear()

    def close(self) -> None:
        """Release the engine and delete the exported model directory."""
        self.llm = None
        if self._export_dir is not None:
            self._export_dir.cleanup()
            self._export_dir = None


# --- pieces that need no vLLM -------------------------------------------------------------
def vllm_prompts(prompt_batch: dict[str, Any]) -> list[dict[str, Any]]:
    """vLLM multimodal prompts from a generate-mode `EditCollator` batch: the same rendered text and the
    same resized [source, edited] images the HF engine's tensors were made from.

    The images are already at the collator's smart-resize size; the per-prompt pixel bounds are set to
    exactly their size so that vLLM's processor leaves them as they are.
    """
    texts, images = prompt_batch.get("prompt_texts"), prompt_batch.get("prompt_images")
    if texts is None or images is None:
        raise ValueError("rollout engine 'vllm' needs the batch's prompt_texts and prompt_images: build it with "
                         "EditCollator(task='critic', mode='generate')")
    prompts = []
    for text, pair in zip(texts, images, strict=True):
        pixels = [image.width * image.height for image in pair]
        prompts.append({
            "prompt": text,
            "multi_modal_data": {"image": list(pair)},
            "mm_processor_kwargs": {"size": {"shortest_edge": min(pixels), "longest_edge": max(pixels)}},
        })
    return prompts


def rollouts_from_outputs(
    outputs: Sequence[Any],
    group_size: int,
    stop_token_ids: Sequence[int],
    pad_token_id: int,
    tokenizer: Any,
    with_logprobs: bool = False,
    device: torch.device | str = "cpu",
) -> Rollouts:
    """`Rollouts` from vLLM `RequestOutput`s (one per prompt, in prompt order).

    Reads, per completion (`RequestOutput.outputs[i]`, ordered by `.index`): `token_ids` (ending with
    the stop token when one stopped it) and, with `with_logprobs`, `logprobs` (one {token_id: Logprob}
    per token). A request with a single completion stands for G identical greedy ones.
    """
    completions = []
    for prompt, request in enumerate(outputs):
        group = sorted(request.outputs, key=lambda completion: completion.index)
        if len(group) == 1:
            group = group * group_size
        if len(group) != group_size:
            raise ValueError(f"prompt {prompt}: vLLM returned {len(group)} completions, expected {group_size}")
        completions.extend(group)
    length = max([1, *(len(completion.token_ids) for completion in completions)])
    ids = torch.full((len(completions), length), pad_token_id, dtype=torch.long)
    generated = torch.zeros_like(ids, dtype=torch.bool)
    for row, completion in enumerate(completions):
        ids[row, : len(completion.token_ids)] = torch.tensor(list(completion.token_ids), dtype=torch.long)
        generated[row, : len(completion.token_ids)] = True
    # The padding may be a stop id (pad = eos): only generated positions can stop a completion.
    mask, _ = completion_mask(ids.masked_fill(~generated, -1), list(stop_token_ids))
    mask = mask * generated
    finished = (torch.isin(ids, torch.tensor(list(stop_token_ids))) & mask.bool()).any(dim=1)
    ids = ids.masked_fill(mask == 0, pad_token_id)
    texts = [tokenizer.decode(row[m.bool()], skip_special_tokens=True) for row, m in zip(ids, mask, strict=True)]
    sampling_logp = sampled_logprobs(completions, ids, mask) if with_logprobs else None
    return Rollouts(
        completion_ids=ids.to(device),
        completion_mask=mask.to(device),
        texts=texts,
        prompt_index=torch.arange(len(outputs), device=device).repeat_interleave(group_size),
        group_size=group_size,
        finished=finished.to(device),
        sampling_logp=None if sampling_logp is None else sampling_logp.to(device),
    )


def sampled_logprobs(completions: Sequence[Any], ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, L) log-prob vLLM reported for each sampled token, 0 on padding."""
    logp = torch.zeros(ids.shape, dtype=torch.float32)
    for row, completion in enumerate(completions):
        if completion.logprobs is None:
            raise ValueError("vLLM returned no logprobs; SamplingParams(logprobs=0) was expected")
        for position, (token, step) in enumerate(zip(completion.token_ids, completion.logprobs, strict=True)):
            logp[row, position] = step[token].logprob
    return logp * mask


def export_backbone(model: Any, directory: str | Path) -> Path:
    """Write the policy backbone (adapters merged) and its processor where vLLM can load them.

    Costs one full copy of the backbone's weights in memory while writing. A 4-bit (QLoRA) base is
    written dequantized, and its `quantization_config` is dropped from config.json.
    """
    directory = Path(directory)
    backbone = model.backbone
    base = backbone.get_base_model() if hasattr(backbone, "peft_config") else backbone
    base.save_pretrained(directory, state_dict=dict(merged_weights(backbone)))
    model.processor.save_pretrained(directory)
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    if config.pop("quantization_config", None) is not None:
        config_path.write_text(json.dumps(config, indent=2))
    return directory


def load_weights(llm: Any, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Load (HF name, tensor) pairs into the engine's model, through whichever hook this vLLM has."""
    if hasattr(llm, "apply_model"):  # documented: runs func(model) in each worker
        llm.apply_model(partial(_load_into, weights=weights))
        return
    try:  # older vLLM (V0 engine), the path TRL's colocate mode uses
        runner_model = llm.llm_engine.model_executor.driver_worker.model_runner.model
    except AttributeError as err:
        raise RuntimeError(
            f"this vLLM ({getattr(importlib.import_module('vllm'), '__version__', '?')}) has neither "
            "LLM.apply_model nor llm_engine.model_executor.driver_worker: ie-eval cannot push weights into it"
        ) from err
    runner_model.load_weights(weights)


def _load_into(model: Any, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
    model.load_weights(weights)


def use_in_process_engine() -> None:
    """Run vLLM's engine core in this process, so `apply_model` gets the weights without serializing them."""
    current = os.environ.setdefault(IN_PROCESS_ENV, "0")
    if current != "0":
        log.warning("%s=%s: vLLM's engine runs in a subprocess, and every weight sync serializes the whole "
                    "model to it; unset it for colocated training", IN_PROCESS_ENV, current)


def engine_arg_names(vllm: Any) -> set[str]:
    """Fields of this vLLM's `EngineArgs` (options `LLM(...)` accepts)."""
    return {field.name for field in dataclasses.fields(vllm.EngineArgs)}
