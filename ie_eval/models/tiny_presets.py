"""Tiny Qwen-VL presets: real model/processor classes, random weights, nothing downloaded.

Each preset is the real `*ForConditionalGeneration` class of its family with a few layers,
a small vision tower (the family's real patch and merge sizes), and an offline tokenizer
(`tokenizer_offline.py`) whose special-token ids the config copies, so the collator, the
heads and generation run unchanged on tiny and real models.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin

from ie_eval.models.tokenizer_offline import build_offline_tokenizer, chat_template_for

# Image-processor settings of the real checkpoints (preprocessor_config.json).
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class TinyPreset:
    """Every size knob of a tiny preset; `load_backbone(name, **overrides)` replaces fields.

    Text: `hidden_size` etc. Vision: `vision_*`, with the family's real `patch_size` and
    `spatial_merge_size` so image-token counts follow the real smart-resize arithmetic.
    `mrope_section` splits the rotary half-dimension into (t, h, w) and must sum to
    `head_dim * partial_rotary_factor / 2`.
    """

    name: str
    family: str
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 16
    mrope_section: tuple[int, int, int] = (2, 3, 3)
    vision_depth: int = 2
    vision_hidden_size: int = 32
    vision_intermediate_size: int = 64
    vision_num_heads: int = 2
    patch_size: int = 14
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    # Qwen3.5 only: gated-delta-net ("linear_attention") layers interleaved with full attention.
    layer_types: tuple[str, ...] | None = None
    linear_num_key_heads: int = 2
    linear_num_value_heads: int = 4
    linear_key_head_dim: int = 16
    linear_value_head_dim: int = 16
    partial_rotary_factor: float = 1.0
    rope_theta: float | None = None  # None: the family's real value
    # Init std of the text decoder / vision tower weights; None: the family's 0.02, tuned for widths of
    # thousands. At width 64-128 it shrinks activations about 4x per linear layer (std * sqrt(fan_in)),
    # so a random tower starts nearly linear; about 1 / sqrt(width) keeps their scale.
    initializer_range: float | None = None
    vision_initializer_range: float | None = None
    # Offline tokenizer corpus (`tokenizer_offline.CORPORA`): "builtin", or "synth-world" for a
    # backbone pretrained on the synthetic world.
    tokenizer: str = "builtin"
    # Embedding / LM-head rows; None: the tokenizer's size. A real size (Qwen3.5: 248320) builds the real
    # vocabulary's cost for benchmarks; the ids above the tokenizer's are never produced by it.
    vocab_size: int | None = None


_PRESETS: dict[str, TinyPreset] = {
    "tiny-qwen2.5-vl": TinyPreset(name="tiny-qwen2.5-vl", family="qwen2.5-vl", patch_size=14),
    "tiny-qwen3-vl": TinyPreset(
        name="tiny-qwen3-vl", family="qwen3-vl", patch_size=16, mrope_section=(4, 2, 2)
    ),
    "tiny-qwen3.5": TinyPreset(
        name="tiny-qwen3.5",
        family="qwen3.5",
        patch_size=16,
        head_dim=32,
        partial_rotary_factor=0.25,
        mrope_section=(2, 1, 1),
        layer_types=("linear_attention", "full_attention"),
    ),
}


def list_presets() -> list[str]:
    """Names of the tiny presets, usable wherever a hub id or local path is accepted."""
    return sorted(_PRESETS)


def get_preset(name: str, **overrides: object) -> TinyPreset:
    """The named preset with `overrides` applied; unknown names or fields raise with the valid ones."""
    if name not in _PRESETS:
        raise KeyError(f"unknown tiny preset {name!r}; available: {list_presets()}")
    fields = {f.name for f in dataclasses.fields(TinyPreset)} - {"name", "family"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"tiny preset {name!r}: unknown override(s) {unknown}; valid: {sorted(fields)}")
    return dataclasses.replace(_PRESETS[name], **overrides)


def tiny_config(preset: TinyPreset, tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    """The family's real config class at tiny size, with vocab and token ids taken from `tokenizer`."""
    builders = {"qwen2.5-vl": _qwen2_5_vl_config, "qwen3-vl": _qwen3_vl_config, "qwen3.5": _qwen3_5_config}
    config = builders[preset.family](preset, _token_ids(tokenizer))
    if preset.initializer_range is not None:
        config.initializer_range = preset.initializer_range
        config.get_text_config().initializer_range = preset.initializer_range
    if preset.vision_initializer_range is not None:
        config.vision_config.initializer_range = preset.vision_initializer_range
    return config


def _token_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """Special-token ids a Qwen-VL config needs, read from the tokenizer so both agree."""
    ids = {
        "image_token_id": tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        "video_token_id": tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        "vision_start_token_id": tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        "vision_end_token_id": tokenizer.convert_tokens_to_ids("<|vision_end|>"),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "vocab_size": len(tokenizer),
    }
    return ids


def _text_kwargs(preset: TinyPreset, ids: dict[str, int]) -> dict[str, object]:
    """Text-decoder fields common to the three families."""
    if preset.vocab_size is not None and preset.vocab_size < ids["vocab_size"]:
        raise ValueError(f"{preset.name}: vocab_size {preset.vocab_size} is below the tokenizer's {ids['vocab_size']}")
    return {
        "vocab_size": preset.vocab_size or ids["vocab_size"],
        "hidden_size": preset.hidden_size,
        "intermediate_size": preset.intermediate_size,
        "num_hidden_layers": preset.num_hidden_layers,
        "num_attention_heads": preset.num_attention_heads,
        "num_key_value_heads": preset.num_key_value_heads,
        "max_position_embeddings": 4096,
        "pad_token_id": ids["pad_token_id"],
    }


def _multimodal_ids(ids: dict[str, int]) -> dict[str, int]:
    return {
        k: ids[k]
        for k in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
    }


def _qwen2_5_vl_config(preset: TinyPreset, ids: dict[str, int]) -> PretrainedConfig:
    from transformers import Qwen2_5_VLConfig

    text = _text_kwargs(preset, ids) | {
        "bos_token_id": ids["bos_token_id"],
        "eos_token_id": ids["eos_token_id"],
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": preset.rope_theta or 1_000_000.0,
            "mrope_section": list(preset.mrope_section),
        },
    }
    if preset.head_dim * preset.num_attention_heads != preset.hidden_size:
        raise ValueError(f"{preset.name}: qwen2.5-vl needs head_dim * num_attention_heads == hidden_size")
    vision = _vision_tower(preset) | {
        "window_size": preset.patch_size * preset.spatial_merge_size * 4,
        "fullatt_block_indexes": [preset.vision_depth - 1],
    }
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **_multimodal_ids(ids))


def _vision_tower(preset: TinyPreset) -> dict[str, object]:
    """Vision-tower fields every family's config takes alike."""
    return {
        "depth": preset.vision_depth,
        "hidden_size": preset.vision_hidden_size,
        "intermediate_size": preset.vision_intermediate_size,
        "num_heads": preset.vision_num_heads,
        "patch_size": preset.patch_size,
        "spatial_merge_size": preset.spatial_merge_size,
        "temporal_patch_size": preset.temporal_patch_size,
        "out_hidden_size": preset.hidden_size,
    }


def _qwen3_vision(preset: TinyPreset) -> dict[str, object]:
    """Vision-tower fields shared by Qwen3-VL and Qwen3.5 (learned position grid of 16x16)."""
    return _vision_tower(preset) | {"num_position_embeddings": 256}


def _qwen3_vl_config(preset: TinyPreset, ids: dict[str, int]) -> PretrainedConfig:
    from transformers import Qwen3VLConfig

    text = _text_kwargs(preset, ids) | {
        "head_dim": preset.head_dim,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": preset.rope_theta or 5_000_000.0,
            "mrope_section": list(preset.mrope_section),
            "mrope_interleaved": True,
        },
    }
    vision = _qwen3_vision(preset) | {"deepstack_visual_indexes": [0]}
    config = Qwen3VLConfig(text_config=text, vision_config=vision, **_multimodal_ids(ids))
    config.text_config.eos_token_id = ids["eos_token_id"]
    config.text_config.bos_token_id = ids["bos_token_id"]
    return config


def _qwen3_5_config(preset: TinyPreset, ids: dict[str, int]) -> PretrainedConfig:
    from transformers import Qwen3_5Config

    layer_types = list(preset.layer_types or ["full_attention"] * preset.num_hidden_layers)
    if len(layer_types) != preset.num_hidden_layers:
        raise ValueError(
            f"{preset.name}: {len(layer_types)} layer_types for {preset.num_hidden_layers} layers"
        )
    text = _text_kwargs(preset, ids) | {
        "head_dim": preset.head_dim,
        "layer_types": layer_types,
        "linear_num_key_heads": preset.linear_num_key_heads,
        "linear_num_value_heads": preset.linear_num_value_heads,
        "linear_key_head_dim": preset.linear_key_head_dim,
        "linear_value_head_dim": preset.linear_value_head_dim,
        "bos_token_id": ids["bos_token_id"],
        "eos_token_id": ids["eos_token_id"],
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": preset.rope_theta or 10_000_000.0,
            "partial_rotary_factor": preset.partial_rotary_factor,
            "mrope_section": list(preset.mrope_section),
            "mrope_interleaved": True,
        },
    }
    return Qwen3_5Config(text_config=text, vision_config=_qwen3_vision(preset), **_multimodal_ids(ids))


def tiny_processor(preset: TinyPreset) -> ProcessorMixin:
    """The family's real processor (tokenizer + image + video processor) around an offline tokenizer."""
    from transformers import (
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    tokenizer = build_offline_tokenizer(preset.family, preset.tokenizer)
    vision_kwargs = {
        "patch_size": preset.patch_size,
        "merge_size": preset.spatial_merge_size,
        "temporal_patch_size": preset.temporal_patch_size,
    }
    if preset.family == "qwen2.5-vl":
        norm = {"image_mean": _CLIP_MEAN, "image_std": _CLIP_STD}
        image_size = {"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 1280}
        processor_cls, video_cls = Qwen2_5_VLProcessor, Qwen2VLVideoProcessor
    else:
        norm = {"image_mean": _HALF, "image_std": _HALF}
        image_size = {"shortest_edge": 65536, "longest_edge": 16777216}
        processor_cls, video_cls = Qwen3VLProcessor, Qwen3VLVideoProcessor
    image_processor = Qwen2VLImageProcessor(size=image_size, **vision_kwargs, **norm)
    video_processor = video_cls(**vision_kwargs, **norm)
    return processor_cls(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=chat_template_for(preset.family),
    )


def build_tiny_model(
    preset: TinyPreset, config: PretrainedConfig, seed: int, **model_kwargs: object
) -> PreTrainedModel:
    """Random-init `*ForConditionalGeneration` from `config`, identical for identical (preset, seed).

    The global RNG is forked so building a model does not shift the caller's random stream.
    """
    from transformers import AutoModelForImageTextToText

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config, **model_kwargs)
    model.generation_config.eos_token_id = [config.text_config.eos_token_id, config.text_config.bos_token_id]
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.bos_token_id = config.text_config.bos_token_id
    return model
