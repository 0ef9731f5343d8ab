"""GRPO's chunked log-probs (through the LM head a chunk of completion tokens at a time) equal the plain
(rows, L, V) logits path: values, entropies and the gradients they send into the model."""

import pytest
import torch

from ie_eval.data.collate import EditCollator
from ie_eval.models.adapters import AdapterConfig
from ie_eval.models.critic import CriticModel
from ie_eval.rl.rollout import SamplingConfig, completion_logprobs_and_entropy
from ie_eval.rl.rollout.hf import HFRolloutEngine


@pytest.fixture
def records(edit_record_factory):
    return [
        edit_record_factory("a", instruction="make the circle blue", source_size=(96, 64), edited_size=(96, 64)),
        edit_record_factory("b", instruction="add a small green square in the top left corner", source_size=(48, 48),
                            edited_size=(48, 48)),
    ]


def statistics_and_gradients(model, batch, ids, mask, chunk_tokens):
    model.zero_grad(set_to_none=True)
    logp, entropy = completion_logprobs_and_entropy(model, batch, ids, mask, 2, 0.7, micro_batch_size=3,
                                                    chunk_tokens=chunk_tokens)
    weights = torch.linspace(-1.0, 1.0, logp.numel()).view_as(logp)  # any upstream gradient, as the loss sends
    ((logp * weights).sum() + 0.1 * entropy.sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logp.detach(), entropy.detach(), grads


@pytest.mark.parametrize(("preset", "adapter"), [("tiny-qwen3-vl", "full"), ("tiny-qwen3.5", "lora")])
def test_chunked_logprobs_equal_the_plain_logits_path(preset, adapter, records):
    torch.manual_seed(0)
    model = CriticModel.build(preset)
    model.attach_adapter(AdapterConfig(kind=adapter, r=4, alpha=8, dropout=0.0))
    model.eval()  # no dropout: the two passes must see the same network
    batch = EditCollator(model.processor, task="critic", mode="generate", max_pixels=64 * 64,
                         min_pixels=32 * 32)(records)
    torch.manual_seed(1)
    rollouts = HFRolloutEngine(model).generate(batch, 2, SamplingConfig(temperature=1.0, max_new_tokens=7))
    mask = rollouts.completion_mask.clone()
    mask[1, 2:] = 0  # a short completion: its padding must stay out of the head and read 0
    plain = statistics_and_gradients(model, batch, rollouts.completion_ids, mask, None)
    chunked = statistics_and_gradients(model, batch, rollouts.completion_ids, mask, 3)
    torch.testing.assert_close(chunked[0], plain[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunked[1], plain[1], rtol=1e-5, atol=1e-5)
    assert (chunked[0][mask == 0] == 0).all() and (chunked[1][mask == 0] == 0).all()
    assert chunked[2].keys() == plain[2].keys() and plain[2]
    if adapter == "full":
        assert any("lm_head" in name for name in plain[2])  # the head itself is trained here
    for name, grad in plain[2].items():
        difference = float((chunked[2][name] - grad).norm() / grad.norm().clamp(min=1e-12))
        assert torch.isfinite(grad).all(), name  # also through the entropy of suppressed (p = 0) tokens
        assert difference < 1e-5, (name, difference)


def test_a_chunk_size_below_one_is_refused():
    from ie_eval.rl.objective import GRPOConfig

    with pytest.raises(ValueError, match="logprob_chunk_tokens"):
        GRPOConfig(logprob_chunk_tokens=0)
