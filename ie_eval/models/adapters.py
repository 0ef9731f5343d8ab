"""Parameter-efficient fine-tuning: AdaLoRA (RE-Reward default), LoRA, QLoRA, or full fine-tuning."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

ADAPTER_KINDS: tuple[str, ...] = ("adalora", "lora", "qlora", "full", "frozen")

# Attention and MLP projections of the Qwen2.5-VL / Qwen3-VL / Qwen3.5 language models;
# in_proj_qkv / in_proj_z / out_proj are Qwen3.5's linear-attention (gated delta-net) projections.
LANGUAGE_PROJECTIONS: tuple[str, ...] = (
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    "in_proj_qkv", "in_proj_z", "out_proj",
)
# The critic's extra modules in the vision tower and merger (paper table 9).
VISION_PROJECTIONS: tuple[str, ...] = (
    "attn.qkv", "attn.proj", "mlp.linear_fc1", "mlp.linear_fc2", "merger.linear_fc1", "merger.linear_fc2",
    "patch_embed.proj",
)


@dataclass
class AdapterConfig:
    """Everything about how the backbone is adapted; one YAML block.

    `adalora_*` fields express the paper's rank schedule: start every module at `init_r`,
    prune to an average of `target_r` between steps `tinit` and `total - tfinal`.
    """

    kind: str = "adalora"
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(LANGUAGE_PROJECTIONS))
    include_vision: bool = False
    adalora_init_r: int = 12
    adalora_target_r: int = 8
    adalora_tinit: int = 0
    adalora_tfinal: int = 0
    adalora_delta_t: int = 1
    adalora_beta1: float = 0.85
    adalora_beta2: float = 0.85
    adalora_orth_reg_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in ADAPTER_KINDS:
            raise ValueError(f"unknown adapter kind '{self.kind}'; choose one of {', '.join(ADAPTER_KINDS)}")

    def to_dict(self) -> dict:
        return asdict(self)


def target_module_regex(config: AdapterConfig) -> str:
    """PEFT target regex: language-model projections, plus vision/merger ones if asked."""
    language = "|".join(m.replace(".", r"\.") for m in config.target_modules)
    pattern = rf".*language_model.*\.({language})"
    if config.include_vision:
        vision = "|".join(m.replace(".", r"\.") for m in VISION_PROJECTIONS)
        pattern = rf"(?:{pattern}|.*visual.*\.({vision}))"
    return pattern


def check_adapter_device(config: AdapterConfig) -> None:
    """QLoRA needs bitsandbytes 4-bit kernels, which need a CUDA GPU."""
    if config.kind != "qlora":
        return
    if not torch.cuda.is_available():
        raise RuntimeError(
            "adapter kind 'qlora' needs a CUDA GPU (bitsandbytes 4-bit); on CPU use kind: lora or adalora"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise RuntimeError("adapter kind 'qlora' needs bitsandbytes: pip install 'ie-eval[gpu]'") from error


def quantization_config(config: AdapterConfig):
    """4-bit NF4 load config for QLoRA, else None; pass to the backbone loader."""
    check_adapter_device(config)
    if config.kind != "qlora":
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def qlora_device_map(environ: Mapping[str, str] = os.environ) -> dict[str, int]:
    """`from_pretrained(device_map=...)` for a 4-bit backbone: the whole model on this rank's GPU.

    bitsandbytes quantizes while loading, onto the device it is loaded to; left to itself (or with
    device_map "auto") every rank would fill cuda:0. LOCAL_RANK is set by the launcher (Lightning, torchrun).
    """
    return {"": int(environ.get("LOCAL_RANK", "0"))}


def apply_adapter(model: nn.Module, config: AdapterConfig, total_steps: int | None = None) -> nn.Module:
    """Wrap `model` per config. Returns a PeftModel for adalora/lora/qlora, else `model` itself.

    AdaLoRA needs the run's total optimizer steps to schedule its rank budget.
    """
    check_adapter_device(config)
    if config.kind == "full":
        model.requires_grad_(True)
        return model
    if config.kind == "frozen":
        model.requires_grad_(False)
        return model
    from peft import AdaLoraConfig, LoraConfig, get_peft_model, prepare_model_for_kbit_training

    targets = target_module_regex(config)
    if config.kind == "adalora":
        if not total_steps:
            raise ValueError("AdaLoRA needs total_steps (the run's optimizer steps) to schedule its rank budget")
        tfinal = min(config.adalora_tfinal, max(total_steps - config.adalora_tinit - 1, 0))
        peft_config = AdaLoraConfig(
            init_r=config.adalora_init_r, target_r=config.adalora_target_r, tinit=config.adalora_tinit,
            tfinal=tfinal, deltaT=config.adalora_delta_t, beta1=config.adalora_beta1,
            beta2=config.adalora_beta2, orth_reg_weight=config.adalora_orth_reg_weight,
            lora_alpha=config.alpha, lora_dropout=config.dropout, target_modules=targets, total_step=total_steps,
        )
    else:
        if config.kind == "qlora":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        peft_config = LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout, target_modules=targets)
    return get_peft_model(model, peft_config)


def adalora_orthogonal_penalty(model: nn.Module) -> torch.Tensor | None:
    """Mean ||P P^T - I||_F over AdaLoRA's P (lora_A) and Q^T (lora_B^T) factors; None if not AdaLoRA.

    PEFT adds this inside its forward only when the HF output carries a loss; our losses are
    computed on pooled states, so the module adds it explicitly.
    """
    peft_config = getattr(model, "peft_config", None)
    if not peft_config or type(next(iter(peft_config.values()))).__name__ != "AdaLoraConfig":
        return None
    penalties = []
    for name, parameter in model.named_parameters():
        if ("lora_A" in name or "lora_B" in name) and parameter.requires_grad:
            matrix = parameter if "lora_A" in name else parameter.T
            gram = matrix @ matrix.T
            identity = torch.eye(gram.shape[0], device=gram.device, dtype=gram.dtype)
            penalties.append(torch.norm(gram - identity, p="fro"))
    return torch.stack(penalties).mean() if penalties else None


def trainable_parameter_count(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


ALLOCATOR_FIELDS: tuple[str, ...] = ("ipt", "exp_avg_ipt", "exp_avg_unc")


def adalora_allocator_state(model: nn.Module) -> dict | None:
    """AdaLoRA's rank allocator state (sensitivity moving averages, rank pattern) for a checkpoint.

    None for other adapters. The allocator is not a module, so Lightning's state_dict misses it: a
    resumed run would restart the moving averages from zero and prune other ranks.
    """
    allocator = getattr(getattr(model, "base_model", None), "rankallocator", None)
    if allocator is None:
        return None
    state = {name: {k: v.detach().cpu().clone() for k, v in getattr(allocator, name).items()} for name in ALLOCATOR_FIELDS}
    config = model.peft_config[model.base_model.trainable_adapter_name]
    return state | {"rank_pattern": config.rank_pattern}


def load_adalora_allocator_state(model: nn.Module, state: dict) -> None:
    allocator = model.base_model.rankallocator
    device = next(model.parameters()).device
    for name in ALLOCATOR_FIELDS:
        setattr(allocator, name, {k: v.to(device) for k, v in state[name].items()})
    model.peft_config[model.base_model.trainable_adapter_name].rank_pattern = state["rank_pattern"]
