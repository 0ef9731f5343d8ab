"""Chunked linear cross-entropy equals the plain (N, V) logits + F.cross_entropy, value and gradients."""

import pytest
import torch

from ie_eval.losses.linear_ce import linear_cross_entropy, plain_linear_cross_entropy


def inputs(tokens=37, hidden=24, vocab=501, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    h = torch.randn(tokens, hidden, generator=generator, dtype=dtype).requires_grad_()
    w = (torch.randn(vocab, hidden, generator=generator, dtype=dtype) * 0.5).requires_grad_()
    return h, w, torch.randint(0, vocab, (tokens,), generator=generator)


@pytest.mark.parametrize("chunk", [1, 8, 37, 100])
def test_loss_and_gradients_equal_the_plain_loss(chunk):
    h, w, targets = inputs()
    plain = plain_linear_cross_entropy(h, w, targets) * 1.7  # an upstream factor reaches both gradients
    plain_dh, plain_dw = torch.autograd.grad(plain, (h, w))
    chunked = linear_cross_entropy(h, w, targets, chunk) * 1.7
    dh, dw = torch.autograd.grad(chunked, (h, w))
    torch.testing.assert_close(chunked, plain.float(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(dh, plain_dh, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(dw, plain_dw, rtol=1e-5, atol=1e-7)


def test_hand_computed_value_on_two_tokens():
    h = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # logits [1, 0, 1] and [0, 2, 2]
    targets = torch.tensor([0, 1])
    e = torch.e
    expected = (-torch.log(torch.tensor(e / (2 * e + 1))) - torch.log(torch.tensor(e**2 / (1 + 2 * e**2)))) / 2
    torch.testing.assert_close(linear_cross_entropy(h, w, targets, 1), expected)


def test_a_frozen_head_gets_no_gradient_and_the_hidden_states_still_do():
    h, w, targets = inputs(dtype=torch.float32)
    w = w.detach()
    loss = linear_cross_entropy(h, w, targets, 10)
    loss.backward()
    plain_h = h.detach().clone().requires_grad_()
    plain_linear_cross_entropy(plain_h, w, targets).backward()
    torch.testing.assert_close(h.grad, plain_h.grad, rtol=1e-4, atol=1e-6)


def test_bfloat16_inputs_match_the_plain_path_in_bfloat16():
    h, w, targets = inputs(tokens=64, hidden=32, vocab=1000, dtype=torch.bfloat16)
    plain = plain_linear_cross_entropy(h, w, targets)
    plain_dh, plain_dw = torch.autograd.grad(plain, (h, w))
    chunked = linear_cross_entropy(h, w, targets, 16)
    dh, dw = torch.autograd.grad(chunked, (h, w))
    assert dh.dtype == dw.dtype == torch.bfloat16
    torch.testing.assert_close(chunked, plain, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(dh.float(), plain_dh.float(), rtol=2e-2, atol=1e-4)
    torch.testing.assert_close(dw.float(), plain_dw.float(), rtol=2e-2, atol=1e-4)


def test_no_tokens_gives_an_attached_zero_and_a_bad_chunk_is_refused():
    h, w, _ = inputs()
    zero = linear_cross_entropy(h[:0], w, torch.zeros(0, dtype=torch.long))
    assert zero.item() == 0.0 and zero.requires_grad
    with pytest.raises(ValueError, match="chunk_tokens"):
        linear_cross_entropy(h, w, torch.zeros(37, dtype=torch.long), 0)
