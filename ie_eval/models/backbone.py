"""One loader for the Qwen-VL backbones: hub ids, local directories and tiny offline presets.

`load_backbone("tiny-qwen3.5")` builds a random tiny model with nothing downloaded;
`load_backbone("Qwen/Qwen3.5-4B")` or `load_backbone("/models/qwen3.5-4b")` loads a real one.
Either way the result is the family's `*ForConditionalGeneration` (LM head included: the critic
generates, the reward model pools hidden states) and the family's real processor.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin

from ie_eval.data.collate import pad_id
from ie_eval.models.tiny_presets import (
    build_tiny_model,
    get_preset,
    list_presets,
    tiny_config,
    tiny_processor,
)

log = logging.getLogger(__name__)

__all__ = [
    "Backbone", "BackboneLoadError", "FAMILIES", "load_backbone", "list_presets", "pretrained_presets", "resolve_dtype",
]

# Pretrained tiny presets ship as Hugging Face checkpoint directories inside the package.
PRETRAINED_PRESETS_DIR = Path(__file__).parent / "presets"

# transformers model_type -> our family name.
FAMILIES: dict[str, str] = {"qwen2_5_vl": "qwen2.5-vl", "qwen3_vl": "qwen3-vl", "qwen3_5": "qwen3.5"}

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "bf16-true": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "16": torch.float16,
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TRUE = {"1", "true", "yes", "on"}


class BackboneLoadError(RuntimeError):
    """A backbone that cannot be loaded; the message says how to use a local path or a tiny preset."""


@dataclass
class Backbone:
    """A loaded Qwen-VL model with its processor.

    Attributes:
        model: the family's `*ForConditionalGeneration` (vision tower + decoder + LM head).
        processor: the family's processor (tokenizer, image processor, video processor, chat template).
        family: "qwen2.5-vl" | "qwen3-vl" | "qwen3.5".
        name: what was passed to `load_backbone` (preset name, hub id or directory).
    """

    model: PreTrainedModel
    processor: ProcessorMixin
    family: str
    name: str

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.processor.tokenizer

    @property
    def config(self) -> PretrainedConfig:
        return self.model.config

    @property
    def text_config(self) -> PretrainedConfig:
        return self.model.config.get_text_config()

    @property
    def hidden_size(self) -> int:
        """Width H of the decoder hidden states `(B, T, H)` that heads pool."""
        return int(self.text_config.hidden_size)

    @property
    def image_token_id(self) -> int:
        """Id of `<|image_pad|>`, repeated once per merged image patch in `input_ids`."""
        return int(self.config.image_token_id)

    @property
    def video_token_id(self) -> int:
        return int(self.config.video_token_id)

    @property
    def vision_start_token_id(self) -> int:
        return int(self.config.vision_start_token_id)

    @property
    def vision_end_token_id(self) -> int:
        return int(self.config.vision_end_token_id)

    @property
    def pad_token_id(self) -> int:
        return pad_id(self.tokenizer)

    @property
    def eos_token_ids(self) -> list[int]:
        """Ids that end a generated answer (`<|im_end|>`, plus the generation config's extras)."""
        ids = {int(self.tokenizer.eos_token_id)}
        extra = self.model.generation_config.eos_token_id
        ids.update(int(i) for i in (extra if isinstance(extra, (list, tuple)) else [extra]) if i is not None)
        return sorted(ids)

    @property
    def image_factor(self) -> int:
        """Side in pixels of one image token: patch size * spatial merge size (28 or 32)."""
        processor = self.processor.image_processor
        return int(processor.patch_size * processor.merge_size)


def load_backbone(
    name_or_path: str,
    *,
    dtype: str | torch.dtype = "float32",
    attn_implementation: str | None = "sdpa",
    gradient_checkpointing: bool = False,
    seed: int = 0,
    **overrides: object,
) -> Backbone:
    """Load a tiny preset (`list_presets()`), a pretrained tiny preset (`pretrained_presets()`),
    a hub id or a local directory as a `Backbone`.

    `overrides` change tiny-preset fields (e.g. `hidden_size=128`) or, for real checkpoints,
    are passed to `from_pretrained` (e.g. `revision=`, `device_map=`). `seed` only affects
    tiny presets (random init). Hub ids fail fast when offline and not cached. A pretrained
    preset loads through the same path as any local checkpoint directory.
    """
    torch_dtype = resolve_dtype(dtype)
    check_attn_implementation(attn_implementation)
    if name_or_path in list_presets():
        backbone = _load_tiny(name_or_path, torch_dtype, attn_implementation, seed, overrides)
    else:
        source = str(pretrained_preset_path(name_or_path) or name_or_path)
        backbone = _load_pretrained(source, torch_dtype, attn_implementation, overrides)
        backbone.name = name_or_path
    if gradient_checkpointing:
        enable_gradient_checkpointing(backbone.model)
    return backbone


# attn_implementation -> the module its kernels come from. Checked before loading, so a missing kernel
# is one message naming the field and the install, not transformers' error after a 9B download.
ATTENTION_KERNELS: dict[str, str] = {"flash_attention_2": "flash_attn"}
_KERNEL_INSTALL = (
    "on a CUDA machine with nvcc, after torch: pip install --no-build-isolation 'ie-eval[gpu-build]' "
    "(from a checkout: pip install --no-build-isolation -e '.[gpu-build]'; README, 'GPU install')"
)


def check_attn_implementation(attn_implementation: str | None) -> None:
    """Raise BackboneLoadError when `attn_implementation` needs a kernel package that does not import."""
    module = ATTENTION_KERNELS.get(attn_implementation or "")
    if module is None:
        return
    try:
        importlib.import_module(module)
    except ImportError as err:  # absent, or built against another torch (undefined symbol)
        raise BackboneLoadError(
            f"attn_implementation={attn_implementation!r} (a config's model.init_args.backbone_kwargs."
            f"attn_implementation, or an export's backbone.attn_implementation in config.json) needs "
            f"{module}, which does not import: {err}. Install it {_KERNEL_INSTALL}; or set "
            f"attn_implementation: sdpa, which needs nothing extra."
        ) from err


# What a saved export's `backbone` block may pass to `load_backbone`: numerics and attention kernel,
# plus the seed and size fields of a tiny preset. Anything else (trust_remote_code, revision,
# device_map, quantization, ...) comes from the caller's code, never from a file.
FILE_BACKBONE_KEYS: frozenset[str] = frozenset({"dtype", "attn_implementation", "gradient_checkpointing", "seed"})


def backbone_from_file(spec: dict, where: str) -> tuple[str, dict]:
    """(name, load_backbone kwargs) of an export's `backbone` block, refusing keys outside the allow-list."""
    import dataclasses

    from ie_eval.models.tiny_presets import TinyPreset

    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise BackboneLoadError(f"{where}: 'backbone' must be an object with a string 'name', got {spec!r}")
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    allowed = set(FILE_BACKBONE_KEYS)
    if spec["name"] in list_presets():
        allowed |= {f.name for f in dataclasses.fields(TinyPreset)} - {"name", "family"}
    refused = sorted(set(kwargs) - allowed)
    if refused:
        raise BackboneLoadError(
            f"{where}: refusing backbone key(s) {refused} from a checkpoint file; a file may set only "
            f"{sorted(allowed)} (trust_remote_code and other loader options must come from your own code)"
        )
    attn = kwargs.get("attn_implementation")
    if attn in ATTENTION_KERNELS and not _imports(ATTENTION_KERNELS[attn]):
        # The kernel is how this machine computes attention, not part of the weights: an export trained
        # with flash-attention on a GPU still loads (and scores the same, up to kernel numerics) without it.
        log.warning("%s: attn_implementation %r needs %s, which does not import here; loading with sdpa",
                    where, attn, ATTENTION_KERNELS[attn])
        kwargs["attn_implementation"] = "sdpa"
    return spec["name"], kwargs


def _imports(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def pretrained_presets() -> list[str]:
    """Names of the pretrained tiny presets shipped in the package (e.g. "tiny-qwen3.5-synth")."""
    if not PRETRAINED_PRESETS_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_PRESETS_DIR.iterdir() if (p / "config.json").is_file())


def pretrained_preset_path(name: str) -> Path | None:
    """Directory of a pretrained preset, or None when `name` is not one."""
    return PRETRAINED_PRESETS_DIR / name if name in pretrained_presets() else None


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """torch dtype from a name such as "bfloat16"/"bf16"/"float32"."""
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
    return _DTYPES[key]


def enable_gradient_checkpointing(model: PreTrainedModel) -> None:
    """Recompute activations in backward (non-reentrant, so frozen inputs/LoRA work); disables the KV cache."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x name; the old one warns
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.config.use_cache = False
    model.config.get_text_config().use_cache = False


def _load_tiny(
    name: str, dtype: torch.dtype, attn_implementation: str | None, seed: int, overrides: dict[str, object]
) -> Backbone:
    """Build a tiny preset: offline tokenizer/processor, config agreeing with it, seeded random weights."""
    preset = get_preset(name, **overrides)
    processor = tiny_processor(preset)
    config = tiny_config(preset, processor.tokenizer)
    model_kwargs: dict[str, object] = {"dtype": dtype}
    if attn_implementation is not None:
        model_kwargs["attn_implementation"] = attn_implementation
    try:
        model = build_tiny_model(preset, config, seed, **model_kwargs)
    except (ImportError, ValueError) as err:
        raise BackboneLoadError(
            f"{name}: cannot build with attn_implementation={attn_implementation!r}: {err}"
        ) from err
    return Backbone(model=model, processor=processor, family=preset.family, name=name)


def _load_pretrained(
    name_or_path: str, dtype: torch.dtype, attn_implementation: str | None, overrides: dict[str, object]
) -> Backbone:
    """Load a real checkpoint with the Auto classes, failing fast (no retries) when it is unavailable."""
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    source, local_only = resolve_checkpoint(name_or_path)
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local_only)
        family = family_of(config, name_or_path)
        model_kwargs: dict[str, object] = {"dtype": dtype, "local_files_only": local_only, **overrides}
        if attn_implementation is not None:
            model_kwargs["attn_implementation"] = attn_implementation
        model = AutoModelForImageTextToText.from_pretrained(source, **model_kwargs)
        processor = AutoProcessor.from_pretrained(source, local_files_only=local_only)
        # from_pretrained returns eval mode; a preset built from config is in train mode. Loaders give
        # the same mode either way, so dropout (LoRA dropout included) trains; inference calls .eval().
        model.train()
    except BackboneLoadError:
        raise
    except (OSError, ValueError, ImportError) as err:
        raise BackboneLoadError(
            f"cannot load backbone {name_or_path!r}: {err}\n{_how_to(name_or_path)}"
        ) from err
    return Backbone(model=model, processor=processor, family=family, name=name_or_path)


def family_of(config: PretrainedConfig, name: str) -> str:
    """Our family name for a transformers config; other model types are rejected by name."""
    model_type = getattr(config, "model_type", None)
    if model_type not in FAMILIES:
        raise BackboneLoadError(
            f"{name}: model_type {model_type!r} is not supported; supported: {sorted(FAMILIES)}"
        )
    return FAMILIES[model_type]


def resolve_checkpoint(name_or_path: str) -> tuple[str, bool]:
    """(what to pass to from_pretrained, local_files_only), or raise at once when it cannot load.

    A directory loads locally. A hub id loads from the HF cache when offline (HF_HUB_OFFLINE /
    TRANSFORMERS_OFFLINE) and raises if it is not cached; online, an unreachable hub raises after
    one short connection attempt instead of the hub client's retries.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path), True
    if path.exists():
        raise BackboneLoadError(f"{name_or_path} is a file; pass a model directory.\n{_how_to(name_or_path)}")
    if name_or_path.startswith("tiny-") and name_or_path.endswith("-synth"):
        raise BackboneLoadError(
            f"pretrained preset {name_or_path} is not installed in {PRETRAINED_PRESETS_DIR}: `make pretrain` trains "
            f"and installs it (`ie-eval pretrain --config configs/pretrain/tiny.yaml --preset {name_or_path}`)"
        )
    if not _HUB_ID.match(name_or_path):
        raise BackboneLoadError(f"model directory not found: {name_or_path}\n{_how_to(name_or_path)}")
    if hub_offline():
        if _in_hf_cache(name_or_path):
            return name_or_path, True
        raise BackboneLoadError(
            f"{name_or_path!r} is a hub id, the hub is offline (HF_HUB_OFFLINE=1) and it is not in the "
            f"local HF cache.\n{_how_to(name_or_path)}"
        )
    if not _hub_reachable():
        raise BackboneLoadError(
            f"{name_or_path!r}: the Hugging Face hub is unreachable.\n{_how_to(name_or_path)}"
        )
    return name_or_path, False


def hub_offline() -> bool:
    """Whether hub access is disabled by HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE (read now, not at import)."""
    return any(
        os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _in_hf_cache(repo_id: str) -> bool:
    """Whether the repo's config.json is in the local HF cache (a previous download)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """One TCP connection to the hub endpoint; skipped (assumed reachable) behind an HTTP proxy."""
    if any(os.environ.get(var) for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _how_to(name_or_path: str) -> str:
    """The remedy every load error ends with: a local directory or a tiny preset."""
    repo = name_or_path if _HUB_ID.match(name_or_path) else "Qwen/Qwen3.5-4B"
    return (
        f"Download it on a machine with network: `hf download {repo} --local-dir DIR`, copy DIR here and "
        f"pass `model: DIR` (a local directory); or use a tiny offline preset: "
        f"{', '.join(list_presets() + pretrained_presets())}."
    )
