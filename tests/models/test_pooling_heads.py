"""Pooling anchors and the regression head on hand-built tensors."""

import pytest
import torch

from ie_eval.models.heads import GaussianHeads, MultiHeadRegressor
from ie_eval.models.pooling import Pooler, last_pattern_end, last_true_index


def hidden_with_position_values(batch: int, length: int) -> torch.Tensor:
    """hidden[b, t] = [b, t]: the pooled vector says where it was read."""
    b = torch.arange(batch)[:, None].expand(batch, length)
    t = torch.arange(length)[None, :].expand(batch, length)
    return torch.stack([b, t], dim=-1).float()


def test_prefill_reads_last_real_token_for_right_and_left_padding():
    hidden = hidden_with_position_values(2, 5)
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert Pooler("prefill")(hidden, right)[:, 1].tolist() == [2.0, 4.0]
    assert Pooler("prefill")(hidden, left)[:, 1].tolist() == [4.0, 4.0]


def test_prefill_respects_prompt_mask_over_answer_tokens():
    hidden = hidden_with_position_values(1, 6)
    attention = torch.ones(1, 6, dtype=torch.long)
    prompt = torch.tensor([[1, 1, 1, 0, 0, 0]])
    assert Pooler("prefill")(hidden, attention, prompt_mask=prompt)[0, 1].item() == 2.0


def test_mean_pooling_ignores_padding():
    hidden = hidden_with_position_values(1, 4)
    mask = torch.tensor([[1, 1, 0, 0]])
    assert Pooler("mean")(hidden, mask)[0, 1].item() == pytest.approx(0.5)


def test_marker_pooling_finds_last_occurrence_of_any_spelling():
    ids = torch.tensor([[5, 7, 8, 1, 7, 8, 2, 0], [9, 4, 7, 8, 3, 3, 3, 3]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1, 1]])
    assert last_pattern_end(ids, [[7, 8], [4, 7, 8]], mask).tolist() == [5, 3]
    pooled = Pooler("marker", [[7, 8]])(hidden_with_position_values(2, 8), mask, ids)
    assert pooled[:, 1].tolist() == [5.0, 3.0]


def test_score_anchor_missing_raises_with_sample_id():
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(ValueError, match="pair-7"):
        Pooler("score_anchor", [[99]])(torch.zeros(1, 3, 2), torch.ones(1, 3), ids, sample_ids=["pair-7"])


def test_unknown_pooling_name_lists_choices():
    with pytest.raises(ValueError, match="prefill, score_anchor, marker, mean"):
        Pooler("cls")


def test_last_true_index_all_padding_gives_minus_one():
    assert last_true_index(torch.tensor([[0, 0], [0, 1]])).tolist() == [-1, 1]


def test_head_has_independent_mlp_per_dimension():
    torch.manual_seed(0)
    head = MultiHeadRegressor(8, num_outputs=3, hidden_size=4, dropout=0.0)
    pooled = torch.randn(5, 8, dtype=torch.bfloat16)
    out = head(pooled)
    assert out.shape == (5, 3) and out.dtype == torch.float32
    out[:, 0].sum().backward()
    assert head.heads[0][0].weight.grad.abs().sum() > 0
    assert head.heads[1][0].weight.grad is None or head.heads[1][0].weight.grad.abs().sum() == 0


def test_batch_input_norm_standardizes_features_and_survives_a_batch_of_one():
    import torch

    from ie_eval.models.heads import MultiHeadRegressor

    torch.manual_seed(0)
    head = MultiHeadRegressor(8, 3, hidden_size=4, dropout=0.0, input_norm="batch")
    shared = torch.randn(8) * 50  # what every sample has in common dominates the raw state
    pooled = shared + 0.1 * torch.randn(16, 8)
    head.train()
    standardized = head.norm(pooled)
    assert standardized.mean(0).abs().max() < 1e-3 and (standardized.std(0, unbiased=False) - 1).abs().max() < 1e-2
    assert head(pooled[:1]).shape == (1, 3)  # training with one sample uses the running statistics
    head.eval()
    assert torch.equal(head(pooled), head(pooled))


def test_unknown_input_norm_is_a_clear_error():
    import pytest

    from ie_eval.models.heads import MultiHeadRegressor

    with pytest.raises(ValueError, match="unknown head input_norm 'group'"):
        MultiHeadRegressor(8, input_norm="group")


def test_batch_norm_head_reloads_exactly(tmp_path):
    import torch

    from ie_eval.models.heads import HeadConfig
    from ie_eval.models.reward_model import RewardModel

    torch.manual_seed(0)
    model = RewardModel.build("tiny-qwen3-vl", head=HeadConfig(hidden_size=8, input_norm="batch"))
    model.head.train()
    model.head(torch.randn(6, model.backbone.config.get_text_config().hidden_size) * 3)  # moves the running stats
    reloaded = RewardModel.from_pretrained(model.save_pretrained(tmp_path / "rm"))
    assert reloaded.head_config.input_norm == "batch"
    for name, value in model.head.state_dict().items():
        assert torch.equal(value, reloaded.head.state_dict()[name]), name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_half_precision_cast_leaves_the_head_float32_and_unrounded(dtype):
    torch.manual_seed(0)
    head = GaussianHeads(16, 3, hidden_size=8, input_norm="batch")
    before = {k: v.clone() for k, v in head.state_dict().items()}
    wrapper = torch.nn.Sequential(torch.nn.Linear(16, 16), head).to(dtype)
    assert wrapper[0].weight.dtype == dtype  # the cast still reaches everything else
    for key, value in head.state_dict().items():
        assert value.dtype == before[key].dtype and torch.equal(value, before[key]), key
    mu, log_sigma = wrapper(torch.randn(4, 16, dtype=dtype))
    assert mu.dtype == log_sigma.dtype == torch.float32 and mu.shape == (4, 3)
    head.double()  # only half precision is refused
    assert next(head.parameters()).dtype == torch.float64
