"""Command fixtures: tiny RE-Reward and critic exports with a small image budget."""

import pytest
import torch


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """{"rm": dir, "critic": dir}: tiny exports, small image budget."""
    from ie_eval.models.critic import CriticModel
    from ie_eval.models.heads import HeadConfig
    from ie_eval.models.reward_model import RewardModel

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("exports")
    rm = RewardModel.build("tiny-qwen3-vl", head=HeadConfig(hidden_size=16, dropout=0.0))
    critic = CriticModel.build("tiny-qwen3-vl", head=HeadConfig(hidden_size=16, dropout=0.0))
    for model in (rm, critic):
        model.input_budget = {"max_pixels": 4096, "min_pixels": 1024, "max_length": 2048}
    return {"rm": rm.save_pretrained(root / "rm"), "critic": critic.save_pretrained(root / "critic")}
