"""The rollout interface GRPO samples through: `generate(prompt_batch, group_size, sampling) -> Rollouts`.

A prompt batch is an `EditCollator(task="critic", mode="generate")` batch (left-padded prompts with
their images). Rollouts hold G completions per prompt, prompt p's at rows p * G .. p * G + G - 1.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class SamplingConfig:
    """Decoding of rollouts: temperature 0 is greedy; top_p < 1 nucleus sampling; top_k 0 = off.

    seed: None draws from torch's global generator (set by `seed_everything`, restored on resume). An int
    draws each prompt's G samples from its own generator, seeded by (seed, step, prompt id)
    (`rollout.seeded`): rollouts then do not depend on the batch, rank or world size a prompt lands in.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0 or self.max_new_tokens < 1:
            raise ValueError(f"invalid sampling config {self}: need temperature >= 0, 0 < top_p <= 1, "
                             "top_k >= 0, max_new_tokens >= 1")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class Rollouts:
    """G completions per prompt, right-padded.

    completion_ids: (N, L) with N = P * G; padding after the stop token is the pad id.
    completion_mask: (N, L) long, 1 on generated tokens up to and including the first stop token.
    texts: N decoded completions (special tokens removed). prompt_index: (N,) row -> prompt.
    finished: (N,) bool, True where a stop token ended the completion (False: cut at max_new_tokens).
    sampling_logp: (N, L) log-prob of each token under the distribution it was drawn from (after
        temperature / top-p; raw logits when greedy), 0 on padding; only when requested.
    """

    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    texts: list[str]
    prompt_index: torch.Tensor
    group_size: int
    finished: torch.Tensor
    sampling_logp: torch.Tensor | None = None

    @property
    def lengths(self) -> torch.Tensor:
        """(N,) completion lengths in tokens (the response-length curve)."""
        return self.completion_mask.sum(dim=1)


def concat_rollouts(parts: Sequence[Rollouts], pad_token_id: int) -> Rollouts:
    """The rollouts of consecutive prompt chunks as one batch: rows in order, prompt indices offset by the
    prompts before each chunk, completions right-padded to the longest (pad id, mask 0, log-prob 0)."""
    if not parts:
        raise ValueError("concat_rollouts needs at least one part")
    group = parts[0].group_size
    if any(part.group_size != group for part in parts):
        raise ValueError(f"rollouts of different group sizes: {[part.group_size for part in parts]}")
    length = max(part.completion_ids.shape[1] for part in parts)

    def padded(tensor: torch.Tensor, value: float) -> torch.Tensor:
        return torch.nn.functional.pad(tensor, (0, length - tensor.shape[1]), value=value)

    offsets = torch.cumsum(torch.tensor([0] + [part.completion_ids.shape[0] // group for part in parts]), 0)
    with_logp = all(part.sampling_logp is not None for part in parts)
    return Rollouts(
        completion_ids=torch.cat([padded(part.completion_ids, pad_token_id) for part in parts]),
        completion_mask=torch.cat([padded(part.completion_mask, 0) for part in parts]),
        texts=[text for part in parts for text in part.texts],
        prompt_index=torch.cat([part.prompt_index + int(offset) for part, offset in zip(parts, offsets, strict=False)]),
        group_size=group,
        finished=torch.cat([part.finished for part in parts]),
        sampling_logp=torch.cat([padded(part.sampling_logp, 0.0) for part in parts]) if with_logp else None,
    )


class RolloutEngine(ABC):
    """Samples G completions per prompt from the current policy.

    seeds: one per prompt (`rollout.seeded.prompt_seeds`): prompt p's samples come from a generator of
    `seeds[p]` alone; None: from torch's global generator.
    """

    @abstractmethod
    def generate(
        self, prompt_batch: dict[str, Any], group_size: int, sampling: SamplingConfig, with_logprobs: bool = False,
        seeds: Sequence[int] | None = None,
    ) -> Rollouts: ...

    def sync_weights(self) -> None:
        """Make the engine sample from the policy's current weights (after an optimizer step).

        In-process engines sample from the policy module itself, so this is a no-op for them.
        """
        return None


VISION_MARKERS: tuple[str, ...] = ("<|vision_start|>", "<|vision_end|>")


def multimodal_token_ids(processor: Any) -> list[int]:
    """Ids of the image / video placeholder and vision-span tokens: a completion must never contain them
    (a sampled image placeholder makes the teacher-forced pass expect image features that do not exist)."""
    tokenizer = processor.tokenizer
    vocab = tokenizer.get_vocab()
    names = [getattr(processor, "image_token", None), getattr(processor, "video_token", None), *VISION_MARKERS]
    return sorted({vocab[name] for name in names if name is not None and name in vocab})


def completion_mask(completion_ids: torch.Tensor, stop_token_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """((N, L) long mask up to and including the first stop token, (N,) bool finished)."""
    is_stop = torch.isin(completion_ids, torch.tensor(stop_token_ids, device=completion_ids.device))
    finished = is_stop.any(dim=1)
    length = completion_ids.shape[1]
    first_stop = torch.where(finished, is_stop.int().argmax(dim=1), torch.full_like(finished, length, dtype=torch.long))
    positions = torch.arange(length, device=completion_ids.device)[None]
    return (positions <= first_stop[:, None]).long(), finished
