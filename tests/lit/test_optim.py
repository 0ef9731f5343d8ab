"""Optimizer groups: language backbone, vision tower + merger, and head each get their configured LR."""

import pytest

from ie_eval.lit.optim import OptimConfig, build_optimizer, split_vision, warmup_cosine_factor
from ie_eval.models.reward_model import RewardModel


@pytest.fixture(scope="module")
def tiny_model():
    return RewardModel.build("tiny-qwen3.5")


def test_vision_parameters_get_their_own_learning_rate(tiny_model):
    language, vision = split_vision(tiny_model.backbone.named_parameters())
    names = {id(p): n for n, p in tiny_model.backbone.named_parameters()}
    assert vision and all("visual" in names[id(p)] for p in vision)
    assert not any("visual" in names[id(p)] for p in language)
    config = OptimConfig(lr=1e-4, head_lr=1e-3, vision_lr=5e-4, warmup_ratio=0.0)
    optimizer = build_optimizer(language, tiny_model.head.parameters(), config, 10, vision_params=vision)["optimizer"]
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs == {"backbone": 1e-4, "vision": 5e-4, "head": 1e-3}
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(tiny_model.parameters()))


def test_vision_learning_rate_defaults_to_the_backbone_one(tiny_model):
    language, vision = split_vision(tiny_model.backbone.named_parameters())
    optimizer = build_optimizer(language, tiny_model.head.parameters(), OptimConfig(lr=3e-4), 10,
                                vision_params=vision)["optimizer"]
    assert {g["name"]: g["lr"] for g in optimizer.param_groups}["vision"] == 3e-4


def test_warmup_then_cosine_to_the_floor():
    assert warmup_cosine_factor(0, 100, 0.1, 0.1) == pytest.approx(0.1)
    assert warmup_cosine_factor(10, 100, 0.1, 0.1) == pytest.approx(1.0)
    assert warmup_cosine_factor(100, 100, 0.1, 0.1) == pytest.approx(0.1)
