"""A decoder's cache after one prefix, expanded so that several rows continue from it.

Both the rollout engine (G samples per prompt) and prefix-shared scoring (G critiques of one edit)
run a shared prefix once, then continue every row from its cache. Two things hold the prefix:
the cache itself (attention keys / values, and the conv / recurrent states of Qwen3.5's
linear-attention layers) and the M-RoPE `rope_deltas` the Qwen-VL inner model stores during the
prefix (the offset from text positions to multimodal positions, read while continuing).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers.cache_utils import Cache, DynamicLayer, LinearAttentionCacheLayerMixin
from transformers.utils import ModelOutput


def cache_argument(model: torch.nn.Module) -> str:
    """The forward's keyword for an existing cache: `cache` in recent transformers (5.24), `past_key_values` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def output_cache(output: ModelOutput) -> Cache:
    """The cache a forward returned, under either name (`cache` in recent transformers, `past_key_values` before)."""
    return output["cache"] if "cache" in output else output["past_key_values"]


def repeat_cache(cache: Cache, repeats: int) -> None:
    """Repeat every batch row of `cache` `repeats` times in place (row p -> rows p * G .. p * G + G - 1).

    Covers attention layers (keys / values) and linear-attention layers (conv and recurrent
    states), which transformers' own `batch_repeat_interleave` does not handle.
    """
    for layer in cache.layers:
        if isinstance(layer, DynamicLayer) and layer.get_seq_length() > 0:
            layer.keys = layer.keys.repeat_interleave(repeats, dim=0)
            layer.values = layer.values.repeat_interleave(repeats, dim=0)
        if isinstance(layer, LinearAttentionCacheLayerMixin):
            for states in (layer.conv_states, layer.recurrent_states):
                for index, state in states.items():
                    if state is not None:
                        states[index] = state.repeat_interleave(repeats, dim=0)
        elif not isinstance(layer, DynamicLayer):
            raise NotImplementedError(f"repeat_cache: cache layer {type(layer).__name__} is not supported")


def rope_delta_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Modules that keep M-RoPE `rope_deltas` between a prefix and its continuation (the Qwen-VL inner model)."""
    return [m for m in model.modules() if torch.is_tensor(getattr(m, "rope_deltas", None))]


def repeat_rope_deltas(model: torch.nn.Module, repeats: int) -> None:
    """Repeat the stored `rope_deltas` of each prefix row `repeats` times, as `repeat_cache` does the cache."""
    for module in rope_delta_modules(model):
        module.rope_deltas = module.rope_deltas.repeat_interleave(repeats, dim=0)


@contextmanager
def clears_rope_deltas(model: torch.nn.Module) -> Iterator[None]:
    """Never leave a prefix's `rope_deltas` behind: the next unrelated forward would read them."""
    try:
        yield
    finally:
        for module in rope_delta_modules(model):
            module.rope_deltas = None
