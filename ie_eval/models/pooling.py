"""Where the regression head reads the backbone: pooling anchors (paper appendix F.1).

- prefill: final-layer state of the last prompt token (paper default, best in its ablation).
- score_anchor: state of a dedicated special token appended to the prompt.
- marker: state of the last token of the last occurrence of a text marker, e.g. `[Final Assessment]`.
- mean: masked mean over prompt tokens.

All work with left or right padding. `prompt_mask` (B, T) marks the tokens that count as the
prompt; with it, a training batch that also holds the answer still pools the prompt's states.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

POOLINGS: tuple[str, ...] = ("prefill", "score_anchor", "marker", "mean")
SCORE_ANCHOR_TOKEN = "<SCORE_ANCHOR>"


def check_pooling_name(name: str) -> str:
    if name not in POOLINGS:
        raise ValueError(f"unknown pooling '{name}'; choose one of {', '.join(POOLINGS)}")
    return name


def last_true_index(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool/int mask -> (B,) index of its last nonzero position (works for any padding side)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, torch.full_like(positions, -1)).max(dim=1).values


def gather_positions(hidden: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """hidden (B, T, H), index (B,) -> (B, H)."""
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


def pool_prefill(hidden: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
    """State of the last prompt token: (B, T, H) -> (B, H)."""
    return gather_positions(hidden, last_true_index(prompt_mask))


def pool_mean(hidden: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over prompt tokens: (B, T, H) -> (B, H)."""
    weights = prompt_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def last_pattern_end(input_ids: torch.Tensor, patterns: Sequence[Sequence[int]], mask: torch.Tensor) -> torch.Tensor:
    """(B,) index of the last token of the last occurrence (inside mask) of any pattern; -1 if none.

    Several patterns because a BPE tokenizer may spell a marker differently after a space.
    """
    batch, length = input_ids.shape
    best = torch.full((batch,), -1, dtype=torch.long, device=input_ids.device)
    for pattern in patterns:
        size = len(pattern)
        if size == 0 or size > length:
            continue
        target = torch.tensor(list(pattern), device=input_ids.device)
        windows = input_ids.unfold(1, size, 1)  # (B, T - size + 1, size)
        hits = (windows == target).all(-1) & mask[:, size - 1 :].bool()
        ends = torch.arange(size - 1, length, device=input_ids.device).expand_as(hits)
        found = torch.where(hits, ends, torch.full_like(ends, -1)).max(dim=1).values
        best = torch.maximum(best, found)
    return best


class Pooler(nn.Module):
    """Pools (B, T, H) hidden states into (B, H) by the configured anchor.

    `anchor_patterns` are token-id sequences for `score_anchor` (the anchor token) or
    `marker` (tokenizations of the marker text); a sample without its anchor raises, since
    silently falling back would train a different model than the config says.
    """

    def __init__(self, name: str = "prefill", anchor_patterns: Sequence[Sequence[int]] | None = None) -> None:
        super().__init__()
        self.name = check_pooling_name(name)
        if name in ("score_anchor", "marker") and not anchor_patterns:
            raise ValueError(f"pooling '{name}' needs the anchor's token ids")
        self.anchor_patterns = [list(p) for p in anchor_patterns or []]

    def forward(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        prompt_mask: torch.Tensor | None = None,
        sample_ids: Sequence[str] | None = None,
    ) -> torch.Tensor:
        mask = prompt_mask if prompt_mask is not None else attention_mask
        if self.name == "prefill":
            return pool_prefill(hidden, mask)
        if self.name == "mean":
            return pool_mean(hidden, mask)
        if input_ids is None:
            raise ValueError(f"pooling '{self.name}' needs input_ids")
        index = last_pattern_end(input_ids, self.anchor_patterns, mask)
        missing = (index < 0).nonzero().flatten().tolist()
        if missing:
            names = [sample_ids[i] for i in missing] if sample_ids else missing
            raise ValueError(f"pooling '{self.name}': anchor not found in the prompt of samples {names}")
        return gather_positions(hidden, index)
