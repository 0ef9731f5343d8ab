"""benchmarks/memory_budget.py: its parameter formulas against instantiated tiny Qwen3.5 models and PEFT."""

import importlib.util
import sys
from pathlib import Path

import pytest

from ie_eval.models.adapters import AdapterConfig, apply_adapter
from ie_eval.models.critic import CRITIC_LANGUAGE_MODULES
from ie_eval.models.heads import MultiHeadRegressor
from ie_eval.models.tiny_presets import build_tiny_model, get_preset, tiny_config
from ie_eval.models.tokenizer_offline import build_offline_tokenizer

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "memory_budget.py"


def load_script():
    spec = importlib.util.spec_from_file_location("memory_budget", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves annotations through sys.modules
    spec.loader.exec_module(module)
    return module


# Layouts that move every term: linear/full attention mixes, untied vs tied embeddings, deeper vision.
VARIANTS = {
    "preset": {},
    "full-first-tied": {"layer_types": ("full_attention", "linear_attention", "linear_attention"),
                        "num_hidden_layers": 3, "intermediate_size": 96, "vision_depth": 3},
}


def tiny_qwen35(variant, tied=False):
    preset = get_preset("tiny-qwen3.5", **VARIANTS[variant])
    config = tiny_config(preset, build_offline_tokenizer(preset.family, preset.tokenizer))
    config.tie_word_embeddings = tied
    config.get_text_config().tie_word_embeddings = tied
    return config, build_tiny_model(preset, config, seed=0)


@pytest.mark.parametrize(("variant", "tied"), [("preset", False), ("full-first-tied", True)])
def test_parameter_formula_matches_an_instantiated_model(variant, tied):
    budget = load_script()
    config, model = tiny_qwen35(variant, tied)
    counts = budget.count_parameters(config.to_dict())
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["vision"] == sum(p.numel() for p in model.model.visual.parameters())


@pytest.mark.parametrize(("adapter", "total_steps"), [
    ({"kind": "lora", "r": 4, "target_modules": list(CRITIC_LANGUAGE_MODULES), "include_vision": True}, None),
    ({"kind": "adalora", "adalora_init_r": 3}, 100),  # default targets: every language projection, delta-net's too
])
def test_adapter_formula_matches_peft(adapter, total_steps):
    budget = load_script()
    config, model = tiny_qwen35("full-first-tied")
    wrapped = apply_adapter(model, AdapterConfig(**adapter), total_steps=total_steps)
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    assert budget.adapter_parameters(config.to_dict(), adapter) == trainable


def test_head_formula_matches_the_regression_head():
    budget = load_script()
    head = MultiHeadRegressor(in_features=64, num_outputs=3, hidden_size=16)
    assert budget.head_parameters(64, 16, 3) == sum(p.numel() for p in head.parameters())


def test_the_budget_grows_with_ranks_only_where_it_should():
    budget = load_script()
    terms = budget.stage_terms(budget.paper_stages()[1])
    ddp = [budget.per_gpu_bytes(terms, "DDP", n) for n in (4, 8)]
    zero3 = [budget.per_gpu_bytes(terms, "ZeRO-3", n) for n in (4, 8)]
    assert ddp[0] == ddp[1] and zero3[1] < zero3[0] < ddp[0]
