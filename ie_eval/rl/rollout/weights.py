"""The policy backbone's weights under the plain (non-PEFT) names, LoRA adapters merged: what an
inference engine that holds its own copy of the model (vLLM) has to load after each optimizer step.

A PEFT model names its tensors `base_model.model.<name>`, moves a wrapped layer's own weight to
`<layer>.base_layer.weight` and adds `lora_A` / `lora_B` tensors. The engine knows only the plain
model, so every name is mapped back and each wrapped weight is sent as W + delta_W (PEFT's own
`get_delta_weight`, i.e. B @ A * scaling), computed on the side: the policy is never mutated, unlike
`merge_adapter()` / `unmerge_adapter()` (which, on a 4-bit base, would also re-quantize W each step).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

PEFT_PREFIX = "base_model.model."
# Tensors of the adapters themselves (LoRA, DoRA magnitude) and PEFT's untouched copies of
# `modules_to_save`: none exist in the plain model.
ADAPTER_MARKERS: tuple[str, ...] = (".lora_", ".original_module.")


def plain_weight_name(name: str) -> str:
    """PEFT tensor name -> the wrapped model's own name (`base_model.model.` / `.base_layer` /
    `.modules_to_save.default` removed)."""
    name = name.removeprefix(PEFT_PREFIX).replace(".base_layer", "")
    return name.replace(".modules_to_save.default", "")


def is_adapter_tensor(name: str) -> bool:
    """True for tensors that exist only in the PEFT model (adapter weights, originals of modules_to_save)."""
    return any(marker in name for marker in ADAPTER_MARKERS)


def state_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of every parameter and persistent buffer, under each name `state_dict` would use
    (tied weights appear under every name they have), without bitsandbytes' quant-state entries."""
    for module_name, module in model.named_modules(remove_duplicate=False):
        prefix = f"{module_name}." if module_name else ""
        for name, parameter in module.named_parameters(recurse=False):
            yield prefix + name, parameter
        for name, buffer in module.named_buffers(recurse=False):
            if buffer is not None and name not in module._non_persistent_buffers_set:
                yield prefix + name, buffer


def dense(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's values; a bitsandbytes 4-bit parameter (it carries a `quant_state`) is dequantized."""
    quant_state = getattr(tensor, "quant_state", None)
    if quant_state is None:
        return tensor.detach()
    import bitsandbytes.functional as bnb_functional  # only a QLoRA policy gets here

    return bnb_functional.dequantize_4bit(tensor.data, quant_state)


def lora_layers(backbone: nn.Module) -> dict[str, nn.Module]:
    """Plain weight name -> the LoRA layer wrapping it, for layers with an active, unmerged adapter."""
    from peft.tuners.lora import LoraLayer

    layers: dict[str, nn.Module] = {}
    for module_name, module in backbone.named_modules():
        if not isinstance(module, LoraLayer) or module.merged or module.disable_adapters:
            continue
        active = active_adapters(module)
        if any(module.use_dora.get(name, False) for name in active):
            raise NotImplementedError(f"{module_name}: DoRA adapters cannot be merged on the side for weight sync")
        if active:
            layers[plain_weight_name(module_name) + ".weight"] = module
    return layers


def active_adapters(layer: nn.Module) -> list[str]:
    return [name for name in layer.active_adapters if name in layer.lora_A]


@torch.no_grad()
def merged_weights(backbone: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(plain name, tensor) of the backbone with its LoRA adapters merged, one tensor at a time.

    W' = W + sum over active adapters of delta_W (PEFT's `get_delta_weight`). A generator, so that a
    consumer loading tensor by tensor (vLLM's `load_weights`) holds at most one merged tensor beyond
    the policy itself. Names equal the plain model's `state_dict` keys.
    """
    is_peft = hasattr(backbone, "peft_config")
    layers = lora_layers(backbone) if is_peft else {}
    for name, tensor in state_tensors(backbone):
        if is_peft and is_adapter_tensor(name):
            continue
        plain = plain_weight_name(name) if is_peft else name
        weight = dense(tensor)
        if plain in layers:
            layer = layers[plain]
            weight = weight + sum(layer.get_delta_weight(a) for a in active_adapters(layer)).to(weight)
        yield plain, weight
