"""Rollouts drawn from per-prompt seeds: a prompt's G samples do not depend on its batch, rank or world size.

`generate(do_sample=True)` draws every row from one global generator, so a prompt's critiques change
with whatever else is in its batch: a 2-rank run samples differently from a 1-rank run on the same
global batch, and a different micro-batching changes every rollout. With `SamplingConfig.seed` set,
each prompt gets a seed from (seed, step, prompt key) and its G rows a (G, max_new_tokens) table of
uniforms from a generator of that seed; token t of row j is drawn by inverse CDF from the warped
(temperature, top-k, top-p) distribution with uniform [j, t]. The same policy and prompt then give the
same critiques wherever the prompt is sampled (up to float ties at a CDF boundary).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from transformers.generation.logits_process import (
    LogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from ie_eval.rl.rollout.base import SamplingConfig


def prompt_seeds(seed: int, step: int, keys: Sequence[str]) -> list[int]:
    """One 63-bit seed per prompt from (seed, step, key); a key repeated in `keys` gets a new seed per repeat."""
    seen: dict[str, int] = {}
    seeds = []
    for key in keys:
        occurrence = seen[key] = seen.get(key, -1) + 1
        digest = hashlib.blake2b(f"{seed}|{step}|{key}|{occurrence}".encode(), digest_size=8).digest()
        seeds.append(int.from_bytes(digest, "little") >> 1)
    return seeds


def row_uniforms(seeds: Sequence[int], group_size: int, steps: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(P * G, steps) uniforms in [0, 1): prompt p's rows p * G .. p * G + G - 1 from a generator seeded `seeds[p]`.

    Drawn on the CPU, so the table is the same on every device."""
    tables = [torch.rand(group_size, steps, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
              for s in seeds]
    return torch.cat(tables).to(device)


class SeededSampler(LogitsProcessor):
    """Draws each row's next token from its own uniforms; the returned scores keep only that token.

    Run last in greedy `generate`, so the argmax is the drawn token. `logps` collects, per step, the
    log-prob of the drawn token under the distribution it was drawn from (the `Rollouts.sampling_logp`).
    suppressed: token ids never drawn (image placeholders), applied before the warpers.
    """

    def __init__(self, uniforms: torch.Tensor, sampling: SamplingConfig, suppressed: Sequence[int] = ()) -> None:
        if sampling.greedy:
            raise ValueError("SeededSampler draws samples: temperature 0 is greedy decoding, use generate() itself")
        self.uniforms = uniforms
        self.suppressed = list(suppressed)
        self.warpers: list[LogitsProcessor] = [TemperatureLogitsWarper(sampling.temperature)]
        if sampling.top_k > 0:
            self.warpers.append(TopKLogitsWarper(sampling.top_k))
        if sampling.top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(sampling.top_p))
        self.logps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = len(self.logps)
        if step >= self.uniforms.shape[1]:
            raise RuntimeError(f"SeededSampler: asked for token {step + 1} with uniforms for {self.uniforms.shape[1]}")
        warped = scores.float()
        if self.suppressed:
            warped = warped.index_fill(-1, torch.tensor(self.suppressed, device=warped.device), float("-inf"))
        for warper in self.warpers:
            warped = warper(input_ids, warped)
        logp = F.log_softmax(warped, dim=-1)
        cdf = logp.double().exp().cumsum(dim=-1)
        target = self.uniforms[:, step : step + 1].to(cdf.device) * cdf[:, -1:]
        # right=True: the first index whose cdf exceeds the target, so a zero-probability token is never drawn.
        tokens = torch.searchsorted(cdf, target, right=True).clamp(max=cdf.shape[-1] - 1)
        self.logps.append(logp.gather(-1, tokens).squeeze(-1))
        chosen = torch.full_like(scores, float("-inf"))
        return chosen.scatter(-1, tokens, 0.0)

    def sampling_logp(self) -> torch.Tensor:
        """(N, steps) log-probs of the drawn tokens (padding rows included; mask them)."""
        return torch.stack(self.logps, dim=1)
