"""Teacher-forced per-token log-probs of rollouts, and the reference policy they are compared with.

GRPO needs log pi(o_t | q, o_<t) of every completion token under the current policy (with
gradients), the policy that sampled (old, once per rollout batch) and the reference. One forward
pass over [prompt, completion] per row gives all of a row's tokens: the logits at position
T - 1 + t predict completion token t. Prompts are repeated G times, images included: each row
carries its own copy of its prompt's pixel patches, in row order, as `image_grid_thw` expects.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from ie_eval.data.batch_rows import gather_rows, images_per_row
from ie_eval.data.collate import model_inputs
from ie_eval.losses.linear_ce import chunkable_head
from ie_eval.losses.linear_logprobs import linear_token_logprobs
from ie_eval.models.reward_model import inner_model
from ie_eval.rl.rollout.base import multimodal_token_ids


def repeat_prompts(model: Any, prompt_batch: dict[str, Any], group_size: int) -> dict[str, Any]:
    """Model inputs with every prompt repeated `group_size` times (rows p * G .. p * G + G - 1)."""
    inputs = model_inputs(prompt_batch)
    prompts = inputs["input_ids"].shape[0]
    rows = torch.arange(prompts, device=inputs["input_ids"].device).repeat_interleave(group_size)
    return gather_rows(inputs, rows, images_per_row(inputs["input_ids"], model.backbone.config.vision_start_token_id))


def completion_logprobs(model: Any, *inputs: Any, **options: Any) -> torch.Tensor:
    """(N, L) log pi(o_t | q, o_<t) of the completion tokens (0 on padding); arguments as `completion_statistics`."""
    return completion_statistics(model, *inputs, **options, with_entropy=False)[0]


def completion_logprobs_and_entropy(model: Any, *inputs: Any, **options: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """`completion_logprobs` plus the (N, L) entropy -sum_v p_v log p_v of each next-token distribution."""
    logp, entropy = completion_statistics(model, *inputs, **options, with_entropy=True)
    return logp, entropy


def completion_statistics(
    model: Any,
    prompt_batch: dict[str, Any],
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    group_size: int,
    temperature: float = 1.0,
    micro_batch_size: int | None = None,
    with_entropy: bool = False,
    chunk_tokens: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(N, L) completion-token log-probs and, with `with_entropy`, next-token entropies, with autograd if enabled.

    model: a CriticModel (anything with `.backbone`); prompt_batch: the left-padded generate batch
    of the P prompts; completion_ids / completion_mask: (P * G, L) as in `Rollouts`.
    temperature: logits are divided by it first (as when sampling; 1 = the model's own distribution).
    micro_batch_size: rows per forward pass (None = all), bounding the (rows, L, V) logits.
    chunk_tokens: take the log-probs through the LM head this many completion tokens at a time, never
    forming the (rows, L, V) logits (`linear_token_logprobs`; None, or a head it cannot read: the logits).
    """
    inputs = model_inputs(prompt_batch)
    prompts = inputs["input_ids"].shape[0]
    if completion_ids.shape[0] != prompts * group_size:
        raise ValueError(f"{completion_ids.shape[0]} completions for {prompts} prompts x group_size {group_size}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for log-probs, got {temperature}")
    row_images = images_per_row(inputs["input_ids"], model.backbone.config.vision_start_token_id)
    suppressed = multimodal_token_ids(model.processor)
    prompt_of_row = torch.arange(prompts, device=completion_ids.device).repeat_interleave(group_size)
    step = micro_batch_size or completion_ids.shape[0]
    head = model.backbone.get_output_embeddings()
    chunked = bool(chunk_tokens) and chunkable_head(head)
    suppressed_ids = torch.as_tensor(suppressed, dtype=torch.long, device=completion_ids.device)
    logps, entropies = [], []
    for start in range(0, completion_ids.shape[0], step):
        rows = slice(start, start + step)
        batch = gather_rows(inputs, prompt_of_row[rows], row_images)
        ids, mask = completion_ids[rows], completion_mask[rows]
        length = ids.shape[1]
        batch["input_ids"] = torch.cat([batch["input_ids"], ids], dim=1)
        batch["attention_mask"] = torch.cat([batch["attention_mask"], mask.to(batch["attention_mask"])], dim=1)
        if "mm_token_type_ids" in batch:
            batch["mm_token_type_ids"] = F.pad(batch["mm_token_type_ids"], (0, length))
        # The last L + 1 positions: T - 1 .. T + L - 1; position T - 1 + t predicts completion token t.
        if chunked:
            hidden = inner_model(model.backbone)(**batch, use_cache=False).last_hidden_state[:, -(length + 1) : -1]
            where = mask.bool()  # only real completion tokens reach the head
            logp, entropy = linear_token_logprobs(
                hidden[where], head.weight, ids[where], temperature=temperature, chunk_tokens=chunk_tokens,
                suppressed=suppressed_ids, with_entropy=with_entropy)
            positions = where.nonzero(as_tuple=True)
            logps.append(torch.zeros(ids.shape, dtype=logp.dtype, device=logp.device).index_put(positions, logp))
            if with_entropy:
                entropies.append(torch.zeros_like(logps[-1]).index_put(positions, entropy))
            continue
        logits = model.backbone(**batch, use_cache=False, logits_to_keep=length + 1).logits[:, :-1].float()
        logits[..., suppressed] = float("-inf")  # the distribution sampled from never emits these
        log_probs = F.log_softmax(logits / temperature, dim=-1)  # (rows, L, V)
        logps.append(log_probs.gather(-1, ids.unsqueeze(-1)).squeeze(-1) * mask)
        if with_entropy:
            # -sum p log p with the suppressed (p = 0) terms 0, so a gradient through it stays finite
            # (entr's is infinite at 0).
            finite_log_probs = log_probs.masked_fill(torch.isinf(log_probs), 0.0)
            entropies.append(-(log_probs.exp() * finite_log_probs).sum(-1) * mask)
    return torch.cat(logps), (torch.cat(entropies) if with_entropy else None)


@contextmanager
def reference_mode(model: Any, ref_model: Any | None = None) -> Iterator[Any]:
    """Yield the model whose log-probs are the reference policy's.

    With `ref_model` (a frozen copy, for full fine-tuning): that model. Else the policy must be a
    PEFT model, and the reference is the same backbone with its adapters disabled for the block.
    """
    if ref_model is not None:
        yield ref_model
        return
    if not getattr(model, "is_peft", False):
        raise ValueError(
            "reference_mode: the policy has no PEFT adapter to disable (full fine-tuning); "
            "pass ref_model=frozen_copy(policy) taken before training"
        )
    with model.backbone.disable_adapter():
        yield model


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy in eval mode with no trainable parameters (the full fine-tuning reference)."""
    reference = copy.deepcopy(model).eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    return reference
