"""What a stage does differently under a strategy that shards parameters (configs/strategy/fsdp.yaml,
deepspeed_stage_3*.yaml): shard in `configure_model`, refuse what cannot run sharded, gather for export.

FSDP is Lightning's ModelParallelStrategy (FSDP2 `fully_shard`, applied here per transformer block):
its FSDPStrategy (FSDP1) refuses a CPU accelerator, and FSDP1 itself needs an accelerator device,
whereas FSDP2 runs on CPU over gloo, which is what the tests check (tests/lit/test_fsdp_reward_fit.py).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy, Strategy

from ie_eval.models.sharding import full_state_dict, fully_shard_model

# Adapters whose training reads parameters or gradients outside forward / backward, where a sharded
# strategy holds only this rank's slice: AdaLoRA's rank allocator (`update_and_allocate`) scores every
# P, Lambda, Q from `.grad`, and its orthogonal penalty multiplies whole P and Q matrices.
UNSHARDABLE_ADAPTERS: dict[str, str] = {
    "adalora": "its rank allocator reads each adapter matrix's .grad and its orthogonal penalty reads whole "
               "matrices outside forward, where each rank holds only its shard",
}


def zero_stage(strategy: Strategy) -> int | None:
    """The ZeRO stage of a DeepSpeedStrategy (from its config dict), None for any other strategy."""
    if not isinstance(strategy, DeepSpeedStrategy):
        return None
    return int(strategy.config.get("zero_optimization", {}).get("stage", 0))


def shards_parameters(strategy: Strategy) -> bool:
    """Whether `strategy` leaves each rank a slice of every parameter: FSDP (either Lightning strategy)
    or ZeRO-3. ZeRO-1/2 shard optimizer state and gradients only; every rank keeps whole weights."""
    return isinstance(strategy, (FSDPStrategy, ModelParallelStrategy)) or zero_stage(strategy) == 3


def strategy_name(strategy: Strategy) -> str:
    stage = zero_stage(strategy)
    return f"DeepSpeed ZeRO-{stage}" if stage is not None else type(strategy).__name__


def check_adapter_for_strategy(adapter_kind: str, strategy: Strategy) -> None:
    """Raise ValueError when `adapter_kind` cannot train under `strategy` (AdaLoRA under FSDP / ZeRO-3)."""
    reason = UNSHARDABLE_ADAPTERS.get(adapter_kind)
    if reason is None or not shards_parameters(strategy):
        return
    raise ValueError(
        f"adapter kind '{adapter_kind}' cannot train under {strategy_name(strategy)}, which shards parameters: "
        f"{reason}. Use adapter kind 'lora' or 'full' (model.init_args.adapter.kind), or a strategy that keeps "
        "whole weights on every rank: configs/strategy/deepspeed_stage_2.yaml (ZeRO-2) or configs/strategy/ddp.yaml"
    )


def shard_for_strategy(module: L.LightningModule, model: torch.nn.Module, forward_methods: tuple[str, ...] = ()) -> None:
    """From `configure_model`: refuse an unshardable adapter, and under ModelParallelStrategy `fully_shard`
    `model` over the data-parallel mesh. Without a trainer (a module built for export) it does nothing."""
    if module._trainer is None:
        return
    strategy = module.trainer.strategy
    adapter = getattr(module, "adapter_config", None)
    if adapter is not None:
        check_adapter_for_strategy(adapter.kind, strategy)
    if not isinstance(strategy, ModelParallelStrategy):
        return  # FSDPStrategy and DeepSpeed wrap the module themselves
    mesh = module.device_mesh
    if mesh["tensor_parallel"].size() != 1:
        raise ValueError(
            f"ModelParallelStrategy with tensor_parallel_size={mesh['tensor_parallel'].size()}: ie-eval shards "
            "over data parallelism only; set trainer.strategy.init_args.tensor_parallel_size: 1 and "
            "data_parallel_size to the number of ranks (configs/strategy/fsdp.yaml)"
        )
    fully_shard_model(model, mesh["data_parallel"], forward_methods)


def gather_full_state(module: L.LightningModule, strategy: Strategy) -> dict[str, torch.Tensor]:
    """`module`'s whole state dict on rank 0 (CPU), from its shards; every rank must call it."""
    if zero_stage(strategy) == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            if not strategy.is_global_zero:
                return {}
            return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    return full_state_dict(module)


def unsharded_copy(module: L.LightningModule, state: dict[str, torch.Tensor]) -> L.LightningModule:
    """A fresh, unsharded `type(module)` built from its hyperparameters and loaded with `state`: what an
    export writes from, on one process, when `module` itself holds only this rank's shards."""
    try:
        copy: Any = type(module)(**module.hparams)
    except TypeError as error:
        raise TypeError(
            f"{type(module).__name__}: cannot rebuild it from its hyperparameters to export sharded weights: {error}"
        ) from error
    copy.configure_model()
    copy.load_state_dict(state)
    copy.model.input_budget = dict(getattr(module.model, "input_budget", {}))
    return copy
