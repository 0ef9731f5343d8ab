"""`HFRolloutEngine`: batched `generate` on the policy itself, with the prompt prefill shared by its group.

Naively, G samples per prompt repeat the prompt G times, so the vision tower and the prefill
(hundreds of image tokens) run G times. Here they run once per prompt:

1. one forward pass over the P prompts minus their last token (images included) fills the KV
   cache (plus the recurrent / conv states of Qwen3.5's linear-attention layers);
2. every cache tensor is `repeat_interleave`d G times along the batch, and so are the model's
   M-RoPE `rope_deltas` (the offset from text positions to the multimodal positions, which the
   model stores during prefill and reads while decoding);
3. `generate` continues from the cache on the P * G repeated prompts: it feeds only the last
   prompt token (no pixels, no vision tower) and samples per row.

Checked on the tiny Qwen2.5-VL, Qwen3-VL and Qwen3.5 presets (transformers 5.x): greedy tokens
and logits equal the repeated-prompt path (tests/rl/test_rollout.py). `share_prefill=False`
runs the repeated-prompt path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers.generation.logits_process import LogitsProcessorList

from ie_eval.data.batch_rows import TOKEN_KEYS
from ie_eval.data.collate import model_inputs
from ie_eval.models.prefix_cache import clears_rope_deltas, output_cache, repeat_cache, repeat_rope_deltas
from ie_eval.models.sharding import parameters_sharded
from ie_eval.rl.rollout.base import (
    RolloutEngine,
    Rollouts,
    SamplingConfig,
    completion_mask,
    multimodal_token_ids,
)
from ie_eval.rl.rollout.logprobs import repeat_prompts
from ie_eval.rl.rollout.seeded import SeededSampler, row_uniforms


class HFRolloutEngine(RolloutEngine):
    """Samples with the policy's own `generate` (CPU or GPU), sharing each prompt's prefill by default.

    model: a CriticModel (its `stop_token_ids` end a completion, `pad_token_id` pads).
    """

    def __init__(self, model: Any, share_prefill: bool = True) -> None:
        self.model = model
        self.share_prefill = share_prefill
        self.suppressed = multimodal_token_ids(model.processor)

    @torch.no_grad()
    def generate(
        self, prompt_batch: dict[str, Any], group_size: int, sampling: SamplingConfig, with_logprobs: bool = False,
        seeds: Sequence[int] | None = None,
    ) -> Rollouts:
        inputs = model_inputs(prompt_batch)
        prompts, prompt_length = inputs["input_ids"].shape
        backbone = self.model.backbone
        sampler = None
        kwargs = self.generate_kwargs(sampling, with_logprobs)
        if seeds is not None and not sampling.greedy:
            if len(seeds) != prompts:
                raise ValueError(f"generate: {len(seeds)} seeds for {prompts} prompts")
            uniforms = row_uniforms(seeds, group_size, sampling.max_new_tokens, inputs["input_ids"].device)
            sampler = SeededSampler(uniforms, sampling, self.suppressed)
            greedy = self.generate_kwargs(SamplingConfig(0.0, max_new_tokens=sampling.max_new_tokens), False)
            kwargs = greedy | {"logits_processor": LogitsProcessorList([sampler])}  # the sampler's pick is the argmax
        with clears_rope_deltas(backbone):
            if self.share_prefill:
                start = self.prefill_once(inputs, group_size)
            else:
                start = repeat_prompts(self.model, prompt_batch, group_size)
            output = backbone.generate(**start, **kwargs)
        ids = output.sequences[:, prompt_length:]
        mask, finished = completion_mask(ids, self.model.stop_token_ids)
        ids = ids.masked_fill(mask == 0, self.model.pad_token_id)
        tokenizer = self.model.processor.tokenizer
        texts = [tokenizer.decode(row[m.bool()], skip_special_tokens=True) for row, m in zip(ids, mask, strict=True)]
        sampling_logp = None
        if with_logprobs and sampler is not None:
            sampling_logp = sampler.sampling_logp()[:, : ids.shape[1]].float() * mask
        elif with_logprobs:
            scores = torch.stack(output.scores, dim=1).float()  # (N, L, V), what each token was drawn from
            sampling_logp = F.log_softmax(scores, dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1) * mask
        return Rollouts(
            completion_ids=ids,
            completion_mask=mask,
            texts=texts,
            prompt_index=torch.arange(prompts, device=ids.device).repeat_interleave(group_size),
            group_size=group_size,
            finished=finished,
            sampling_logp=sampling_logp,
        )

    def prefill_once(self, inputs: dict[str, Any], group_size: int) -> dict[str, Any]:
        """`generate` kwargs continuing from ONE prefill of the P prompts, expanded to P * G rows."""
        backbone = self.model.backbone
        head = {k: v[:, :-1] if k in TOKEN_KEYS else v for k, v in inputs.items()}
        cache = output_cache(backbone(**head, use_cache=True, logits_to_keep=1))
        repeat_cache(cache, group_size)
        repeat_rope_deltas(backbone, group_size)
        start = {k: inputs[k].repeat_interleave(group_size, dim=0) for k in TOKEN_KEYS if k in inputs}
        return start | {"past_key_values": cache}

    def generate_kwargs(self, sampling: SamplingConfig, with_logprobs: bool) -> dict[str, Any]:
        decoding: dict[str, Any] = {"do_sample": False}
        if not sampling.greedy:
            decoding = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p,
                        "top_k": sampling.top_k}
        return decoding | {
            "max_new_tokens": sampling.max_new_tokens,
            "eos_token_id": self.model.stop_token_ids,
            "pad_token_id": self.model.pad_token_id,
            "use_cache": True,
            "return_dict_in_generate": True,
            "output_scores": with_logprobs,
            "suppress_tokens": self.suppressed,
            # FSDP / ZeRO-3: each forward all-gathers from every rank, so all ranks decode until the longest is done.
            "synced_gpus": parameters_sharded(self.model.backbone),
        }
