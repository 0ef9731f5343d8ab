"""RewardModel on tiny presets: pooling anchors, adapters, exact save/load round trips."""

import pytest
import torch

from ie_eval.data.collate import EditCollator
from ie_eval.models.adapters import AdapterConfig, adalora_orthogonal_penalty
from ie_eval.models.heads import HeadConfig
from ie_eval.models.reward_model import RewardModel

CRITIQUE = "[Visual Quality] sharp.\n[Final Assessment]\nVisual Quality: 4"


def reward_batch(model, edit_record_factory, n=2):
    records = [
        edit_record_factory(pair_id=f"p{i}", critique=CRITIQUE + " x" * i, critique_scores=(0.1 * i, 0.2, 0.3))
        for i in range(n)
    ]
    collator = EditCollator(model.processor, task="reward", mode="score", max_pixels=64 * 64, prompt_suffix=model.prompt_suffix)
    return collator(records)


@pytest.mark.parametrize("pooling", ["prefill", "score_anchor", "marker", "mean"])
def test_every_pooling_anchor_scores_a_batch(pooling, edit_record_factory):
    model = RewardModel.build("tiny-qwen2.5-vl", pooling=pooling, head=HeadConfig(hidden_size=16, dropout=0.0)).eval()
    scores = model(reward_batch(model, edit_record_factory))
    assert scores.shape == (2, 3) and torch.isfinite(scores).all()
    assert model.weighted_reward(scores).shape == (2,)


@pytest.mark.parametrize("kind", ["adalora", "lora", "full"])
def test_save_load_reproduces_scores_exactly(kind, edit_record_factory, tmp_path):
    torch.manual_seed(0)
    model = RewardModel.build("tiny-qwen3.5", pooling="score_anchor", head=HeadConfig(hidden_size=16))
    model.attach_adapter(AdapterConfig(kind=kind, r=4, adalora_init_r=4, adalora_target_r=2), total_steps=10)
    # Move trainable weights off their init so a load that drops them would show.
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.01 * torch.randn_like(parameter))
    model.eval()
    batch = reward_batch(model, edit_record_factory)
    before = model(batch)
    model.save_pretrained(tmp_path / "rm")
    reloaded = RewardModel.from_pretrained(tmp_path / "rm")
    assert torch.equal(reloaded(batch), before)
    assert reloaded.pooling == "score_anchor" and reloaded.adapter_config.kind == kind


def test_adalora_adds_orthogonal_penalty_and_lora_does_not():
    adalora = RewardModel.build("tiny-qwen3-vl")
    adalora.attach_adapter(AdapterConfig(kind="adalora", adalora_init_r=4, adalora_target_r=2), total_steps=5)
    assert adalora_orthogonal_penalty(adalora.backbone) is not None
    lora = RewardModel.build("tiny-qwen3-vl")
    lora.attach_adapter(AdapterConfig(kind="lora", r=4))
    assert adalora_orthogonal_penalty(lora.backbone) is None
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable) and any(n.startswith("head.") for n in trainable)
    assert not any("visual" in n for n in trainable)


def test_qlora_on_cpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CPU-only behaviour")
    model = RewardModel.build("tiny-qwen3-vl")
    with pytest.raises(RuntimeError, match="qlora.*CUDA GPU"):
        model.attach_adapter(AdapterConfig(kind="qlora"))


def test_from_pretrained_on_a_wrong_dir_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        RewardModel.from_pretrained(tmp_path)


def test_full_fine_tuning_freezes_the_untied_lm_head_the_scorer_never_reads():
    """No gradient reaches the LM head; trainable, it would stop DDP (a parameter without a gradient)."""
    model = RewardModel.build("tiny-qwen3.5", head=HeadConfig(hidden_size=16))
    model.attach_adapter(AdapterConfig(kind="full"))
    assert not model.backbone.get_output_embeddings().weight.requires_grad
    assert model.backbone.get_input_embeddings().weight.requires_grad
    assert all(p.requires_grad for p in model.head.parameters())
    tied = RewardModel.build("tiny-qwen3.5", head=HeadConfig(hidden_size=16))
    tied.backbone.get_output_embeddings().weight = tied.backbone.get_input_embeddings().weight
    tied.attach_adapter(AdapterConfig(kind="full"))
    assert tied.backbone.get_input_embeddings().weight.requires_grad  # tied: it is the embeddings, trained
