"""Sharded-strategy overlays (configs/strategy/fsdp*.yaml, deepspeed_*.yaml) build their strategies through
LightningCLI on CPU, and what cannot run sharded fails at setup with what to use instead.

Launching DeepSpeed needs CUDA (its strategy refuses any other accelerator at setup); that refusal is
checked here, the GPU run is not. FSDP itself runs on CPU: tests/lit/test_fsdp_reward_fit.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, ModelParallelStrategy

from ie_eval.commands.fit import build_cli
from ie_eval.lit.strategies import check_adapter_for_strategy, shards_parameters, zero_stage
from ie_eval.models.adapters import AdapterConfig, qlora_device_map
from ie_eval.models.sharding import parameters_sharded

ROOT = Path(__file__).resolve().parents[2]
deepspeed = pytest.importorskip("deepspeed", reason="DeepSpeed overlays need `pip install deepspeed` (ie-eval[dev])")

# overlay -> (ZeRO stage, optimizer offloaded to, parameters offloaded to)
DEEPSPEED_OVERLAYS = {
    "deepspeed_stage_2.yaml": (2, None, None),
    "deepspeed_stage_2_offload.yaml": (2, "cpu", None),
    "deepspeed_stage_3.yaml": (3, None, None),
    "deepspeed_stage_3_offload.yaml": (3, "cpu", "cpu"),
}


def built_strategy(tmp_path: Path, overlay: str):
    """The strategy LightningCLI builds for the tiny RE-Reward config under `overlay` (CPU, not launched)."""
    cli = build_cli([
        "--config", str(ROOT / "configs/rm/tiny.yaml"), "--config", str(ROOT / "configs/strategy" / overlay),
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false",
    ], run=False)
    return cli.trainer.strategy


@pytest.mark.filterwarnings("ignore:LightningCLI")
@pytest.mark.parametrize("overlay", sorted(DEEPSPEED_OVERLAYS))
def test_each_deepspeed_overlay_builds_its_zero_stage_and_offload(tmp_path, overlay):
    stage, optimizer_device, params_device = DEEPSPEED_OVERLAYS[overlay]
    strategy = built_strategy(tmp_path, overlay)
    assert isinstance(strategy, DeepSpeedStrategy)
    zero = strategy.config["zero_optimization"]
    assert zero_stage(strategy) == zero["stage"] == stage
    assert zero.get("offload_optimizer", {}).get("device") == optimizer_device
    assert zero.get("offload_param", {}).get("device") == params_device
    assert shards_parameters(strategy) is (stage == 3)


@pytest.mark.filterwarnings("ignore:LightningCLI")
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal; on a GPU the strategy launches")
def test_deepspeed_refuses_a_cpu_accelerator_at_setup(tmp_path):
    strategy = built_strategy(tmp_path, "deepspeed_stage_2.yaml")
    with pytest.raises(RuntimeError, match="only supported on CUDA GPUs"):
        strategy.setup_environment()


@pytest.mark.filterwarnings("ignore:LightningCLI")
def test_the_fsdp_overlay_builds_fsdp2_over_every_rank_with_whole_checkpoints(tmp_path):
    strategy = built_strategy(tmp_path, "fsdp.yaml")
    assert isinstance(strategy, ModelParallelStrategy) and shards_parameters(strategy)
    assert (strategy._data_parallel_size, strategy._tensor_parallel_size) == (8, 1)
    assert strategy._save_distributed_checkpoint is False  # ExportPretrained reads one whole .ckpt


@pytest.mark.parametrize("strategy", [ModelParallelStrategy(), DeepSpeedStrategy(stage=3)], ids=["fsdp", "zero3"])
def test_adalora_is_refused_where_parameters_are_sharded(strategy):
    with pytest.raises(ValueError, match="adapter kind 'adalora'.*'lora' or 'full'.*deepspeed_stage_2.yaml"):
        check_adapter_for_strategy("adalora", strategy)
    for kind in ("lora", "full"):
        check_adapter_for_strategy(kind, strategy)


@pytest.mark.parametrize("strategy", [DDPStrategy(), DeepSpeedStrategy(stage=2)], ids=["ddp", "zero2"])
def test_adalora_trains_where_every_rank_keeps_whole_weights(strategy):
    check_adapter_for_strategy("adalora", strategy)


def test_a_partitioned_parameter_makes_generation_synced():
    module = torch.nn.Linear(2, 2)
    assert not parameters_sharded(module)
    module.weight.ds_id = 0  # what ZeRO-3 marks its partitioned parameters with
    assert parameters_sharded(module)


@pytest.mark.parametrize(("environ", "device"), [({"LOCAL_RANK": "3"}, 3), ({}, 0)])
def test_qlora_loads_each_rank_onto_its_local_gpu(environ, device):
    assert qlora_device_map(environ) == {"": device}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA loading needs a CUDA GPU and bitsandbytes")
def test_qlora_load_kwargs_name_the_local_device(monkeypatch):
    from ie_eval.models.reward_model import quantized_load_kwargs

    monkeypatch.setenv("LOCAL_RANK", "0")
    assert quantized_load_kwargs(AdapterConfig(kind="qlora"))["device_map"] == {"": 0}
