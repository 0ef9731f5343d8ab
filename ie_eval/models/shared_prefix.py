"""Final decoder states of a batch whose rows share prefixes, each shared prefix run once.

During GRPO the reward model scores the G critiques of every prompt: G rows that are the same
images and instruction up to the critique. The plain forward runs the vision tower and the
prefix (hundreds of image tokens) G times. Here rows whose images are equal and whose tokens
agree through their last image are grouped; per group, one forward over the longest common
token prefix (images included) fills a cache, the cache is repeated for the group's rows
(`models.prefix_cache`), and one forward continues every row over its own remaining tokens.
The rows' states are then laid back at their positions, so any pooling reads them as from
the plain forward.

Exact by construction: a causal decoder's states at a prefix do not depend on what follows, and
the split falls on a token boundary of the rows as they were tokenized. Rows in no group
(singletons, text-only rows, non-contiguous masks) go through one ordinary batched forward.
Equality with the plain forward: tests/models/test_shared_prefix.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ie_eval.data.batch_rows import TOKEN_KEYS, gather_rows, image_patches, images_per_row, row_image_indices
from ie_eval.models.prefix_cache import (
    cache_argument,
    clears_rope_deltas,
    output_cache,
    repeat_cache,
    repeat_rope_deltas,
)


@dataclass(frozen=True)
class PrefixGroup:
    """Rows that share their first `length` real tokens (their images among them)."""

    rows: tuple[int, ...]
    length: int


@dataclass(frozen=True)
class RowSpans:
    """Each row's real tokens: `starts[r] .. starts[r] + lengths[r]` (one contiguous run, any padding side)."""

    starts: list[int]
    lengths: list[int]

    @classmethod
    def of(cls, attention_mask: torch.Tensor) -> RowSpans | None:
        """The spans, or None when some row's real tokens are not one contiguous run."""
        mask = attention_mask.bool()
        lengths = mask.sum(dim=1)
        starts = mask.int().argmax(dim=1)
        ends = mask.shape[1] - mask.flip(1).int().argmax(dim=1)
        if bool(((ends - starts != lengths) & (lengths > 0)).any()):
            return None
        return cls(starts.tolist(), lengths.tolist())


def find_prefix_groups(
    inputs: dict[str, Any], spans: RowSpans, row_images: torch.Tensor, vision_end_token_id: int, min_rows: int = 2,
) -> list[PrefixGroup]:
    """Groups of at least `min_rows` rows with equal images and equal tokens through their last image.

    A group's `length` is its rows' longest common token prefix, less one token if that would
    leave a row nothing to continue with; a group whose prefix would not cover every image token
    (a row that ends with its last image) is not formed.
    """
    if "pixel_values" not in inputs:
        return []
    ids = inputs["input_ids"]
    per_row = row_image_indices(row_images)
    patches, grid = image_patches(inputs), inputs["image_grid_thw"]
    image_end = [_last_index(ids[r, spans.starts[r] : spans.starts[r] + spans.lengths[r]], vision_end_token_id)
                 for r in range(ids.shape[0])]

    def same_images_and_head(r: int, s: int) -> bool:
        if image_end[r] < 0 or image_end[r] != image_end[s] or len(per_row[r]) != len(per_row[s]):
            return False
        head_r = ids[r, spans.starts[r] : spans.starts[r] + image_end[r] + 1]
        head_s = ids[s, spans.starts[s] : spans.starts[s] + image_end[s] + 1]
        return torch.equal(head_r, head_s) and all(
            torch.equal(grid[i], grid[j]) and torch.equal(patches[i], patches[j])
            for i, j in zip(per_row[r], per_row[s], strict=True)
        )

    members: list[list[int]] = []
    for row in range(ids.shape[0]):
        if image_end[row] < 0:
            continue
        group = next((g for g in members if same_images_and_head(g[0], row)), None)
        if group is None:
            members.append([row])
        else:
            group.append(row)
    groups = []
    for rows in members:
        if len(rows) < min_rows:
            continue
        shortest = min(spans.lengths[r] for r in rows)
        tokens = torch.stack([ids[r, spans.starts[r] : spans.starts[r] + shortest] for r in rows])
        common = int((tokens == tokens[:1]).all(dim=0).int().cumprod(dim=0).sum())
        length = min(common, shortest - 1)
        if length > image_end[rows[0]]:  # the prefix holds every image token (a row ending at its image does not)
            groups.append(PrefixGroup(tuple(rows), length))
    return groups


def _last_index(row: torch.Tensor, token_id: int) -> int:
    hits = (row == token_id).nonzero()
    return int(hits[-1]) if hits.numel() else -1


def shared_prefix_hidden_states(decoder: nn.Module, inputs: dict[str, Any], vision_config: Any) -> torch.Tensor:
    """(B, T, H) final states of `decoder` (the Qwen-VL inner model) on `inputs`, each shared prefix run once.

    inputs: `model_inputs(batch)`; vision_config: the backbone config (its vision start / end token ids).
    Padding positions hold zeros (the plain forward's states there are never pooled).
    """
    spans = RowSpans.of(inputs["attention_mask"])
    row_images = images_per_row(inputs["input_ids"], vision_config.vision_start_token_id)
    groups = [] if spans is None else find_prefix_groups(inputs, spans, row_images, vision_config.vision_end_token_id)
    if not groups:
        return decoder(**inputs, use_cache=False).last_hidden_state
    batch, width = inputs["input_ids"].shape
    hidden: torch.Tensor | None = None

    def place(row: int, states: torch.Tensor, offset: int = 0) -> None:
        nonlocal hidden
        if hidden is None:
            hidden = states.new_zeros(batch, width, states.shape[-1])
        start = spans.starts[row] + offset
        hidden[row, start : start + states.shape[0]] = states

    grouped = {r for g in groups for r in g.rows}
    singles = [r for r in range(batch) if r not in grouped]
    if singles:
        rows = torch.tensor(singles, device=inputs["input_ids"].device)
        states = decoder(**gather_rows(inputs, rows, row_images), use_cache=False).last_hidden_state
        for index, row in enumerate(singles):
            place(row, states[index, spans.starts[row] : spans.starts[row] + spans.lengths[row]])
    for group in groups:
        prefix_states, suffix_states = _run_group(decoder, inputs, spans, row_images, group)
        for index, row in enumerate(group.rows):
            place(row, prefix_states)
            place(row, suffix_states[index, : spans.lengths[row] - group.length], offset=group.length)
    return hidden


def _run_group(
    decoder: nn.Module, inputs: dict[str, Any], spans: RowSpans, row_images: torch.Tensor, group: PrefixGroup,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(length, H) states of the group's prefix and (rows, longest rest, H) of each row's rest."""
    ids = inputs["input_ids"]
    first = group.rows[0]
    prefix = gather_rows(inputs, torch.tensor([first], device=ids.device), row_images)
    window = slice(spans.starts[first], spans.starts[first] + group.length)
    prefix = {k: v[:, window] if k in TOKEN_KEYS else v for k, v in prefix.items()}
    rests = [ids[r, spans.starts[r] + group.length : spans.starts[r] + spans.lengths[r]] for r in group.rows]
    # Right-padded rests need no mask: a causal row never attends to the padding after it.
    rest_ids = torch.nn.utils.rnn.pad_sequence(rests, batch_first=True, padding_value=0)
    with clears_rope_deltas(decoder):
        output = decoder(**prefix, use_cache=True)
        cache = output_cache(output)
        repeat_cache(cache, len(group.rows))
        repeat_rope_deltas(decoder, len(group.rows))
        rest = decoder(input_ids=rest_ids, **{cache_argument(decoder): cache}, use_cache=True).last_hidden_state
    return output.last_hidden_state[0], rest
