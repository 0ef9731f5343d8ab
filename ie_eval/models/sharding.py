"""Parameter sharding of a model (FSDP2 `fully_shard`, DeepSpeed ZeRO-3): applying it, and asking whether it holds.

What it leaves out: tensor parallelism (every mesh here is one data-parallel dimension) and
4-bit QLoRA weights (bitsandbytes' packed uint8 parameters are not sharded; use DDP for QLoRA).
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn


def parameters_sharded(module: nn.Module) -> bool:
    """Whether each rank holds only a slice of some of `module`'s parameters (FSDP2 DTensors, ZeRO-3's
    partitioned parameters): a forward then needs every rank, so `generate` must run `synced_gpus`."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) or hasattr(p, "ds_id") for p in module.parameters())


def layer_classes(module: nn.Module) -> set[str]:
    """Class names of the blocks Hugging Face keeps whole on one device (`_no_split_modules`): decoder
    layers and vision blocks, the units FSDP all-gathers one at a time."""
    names: set[str] = set()
    for sub in module.modules():
        names |= set(getattr(sub, "_no_split_modules", None) or ())
    return names


def _own_parameters(module: nn.Module, sharded: set[int]) -> list[nn.Parameter]:
    return [p for p in module.parameters() if id(p) not in sharded]


def fully_shard_model(model: nn.Module, mesh, forward_methods: tuple[str, ...] = ()) -> nn.Module:
    """`fully_shard` every transformer block of `model`, then `model` itself (one all-gather group per block,
    the root's group holding embeddings, norms and heads).

    FSDP2 all-gathers a group as one flat buffer, so a group's parameters must share a dtype: leaf modules
    whose parameters are not of their group's most common dtype (fp32 LoRA factors in a bf16 layer, the
    fp32 regression head beside bf16 embeddings) become their own groups first. `forward_methods` of
    `model` (e.g. `generate_texts`) unshard the root group like `forward` does.
    """
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    sharded: set[int] = set()

    def shard(module: nn.Module) -> None:
        params = _own_parameters(module, sharded)
        dtypes = Counter(p.dtype for p in params)
        if len(dtypes) > 1:
            majority = dtypes.most_common(1)[0][0]
            for leaf in module.modules():
                own = _own_parameters(leaf, sharded)
                if own and not any(True for _ in leaf.children()) and all(p.dtype != majority for p in own):
                    fully_shard(leaf, mesh=mesh)
                    sharded.update(id(p) for p in own)
        if _own_parameters(module, sharded):
            fully_shard(module, mesh=mesh)
            sharded.update(id(p) for p in module.parameters())

    blocks = layer_classes(model)
    for module in list(model.modules()):
        if type(module).__name__ in blocks:
            shard(module)
    shard(model)
    for name in forward_methods:
        register_fsdp_forward_method(model, name)
    return model


def full_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The whole, unsharded state dict on CPU on rank 0 (empty elsewhere); every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
