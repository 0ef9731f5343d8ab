"""GRPO fixtures: a saved tiny SFT critic (the policy's start) and a saved tiny RE-Reward."""

import pytest
from grpo_helpers import TINY_PIXELS


@pytest.fixture(scope="session")
def tiny_critic_dir(tmp_path_factory):
    import torch

    from ie_eval.models.adapters import AdapterConfig
    from ie_eval.models.critic import CriticModel
    from ie_eval.models.heads import HeadConfig

    torch.manual_seed(0)
    model = CriticModel.build("tiny-qwen3.5", {"dtype": "float32", "seed": 0}, head=HeadConfig(hidden_size=16))
    model.attach_adapter(AdapterConfig(kind="full"))
    return model.save_pretrained(tmp_path_factory.mktemp("grpo") / "sft")


@pytest.fixture(scope="session")
def tiny_reward_dir(tmp_path_factory):
    import torch

    from ie_eval.models.heads import HeadConfig
    from ie_eval.models.reward_model import RewardModel

    torch.manual_seed(1)
    model = RewardModel.build("tiny-qwen3-vl", head=HeadConfig(hidden_size=16))
    model.input_budget = {"max_pixels": TINY_PIXELS, "min_pixels": 1024}
    return model.save_pretrained(tmp_path_factory.mktemp("grpo") / "rm")
