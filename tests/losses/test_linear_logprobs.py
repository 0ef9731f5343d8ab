"""Chunked per-token log-probs and entropies equal the plain (N, V) log-softmax, values and gradients."""

import pytest
import torch

from ie_eval.losses.linear_logprobs import linear_token_logprobs, plain_token_logprobs


def _inputs(tokens=37, hidden=16, vocab=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(tokens, hidden, generator=g, dtype=torch.float64, requires_grad=True)
    w = (torch.randn(vocab, hidden, generator=g, dtype=torch.float64) * 0.5).requires_grad_(True)
    targets = torch.randint(0, vocab - 3, (tokens,), generator=g)
    return h, w, targets, g


@pytest.mark.parametrize("chunk", [1, 8, 37, 100])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_values_and_gradients_match_the_plain_log_softmax(chunk, temperature):
    h, w, targets, g = _inputs()
    suppressed = torch.tensor([297, 298, 299])  # e.g. the image placeholder tokens
    upstream_logp, upstream_entropy = torch.randn(37, generator=g, dtype=torch.float64), torch.randn(
        37, generator=g, dtype=torch.float64)
    results = []
    for fn, extra in ((plain_token_logprobs, {}), (linear_token_logprobs, {"chunk_tokens": chunk})):
        logp, entropy = fn(h, w, targets, temperature=temperature, suppressed=suppressed, with_entropy=True, **extra)
        grads = torch.autograd.grad((logp * upstream_logp).sum() + (entropy * upstream_entropy).sum(), (h, w))
        results.append((logp, entropy, *grads))
    for plain, chunked in zip(*results, strict=True):
        torch.testing.assert_close(chunked, plain, rtol=1e-9, atol=1e-10)
    assert torch.isfinite(results[1][1]).all()


def test_without_entropy_only_the_logprob_gradient_flows():
    h, w, targets, g = _inputs(tokens=9)
    upstream = torch.randn(9, generator=g, dtype=torch.float64)
    logp, entropy = linear_token_logprobs(h, w, targets, chunk_tokens=4)
    assert entropy is None
    plain, _ = plain_token_logprobs(h, w, targets)
    for a, b in zip(torch.autograd.grad((logp * upstream).sum(), (h, w)),
                    torch.autograd.grad((plain * upstream).sum(), (h, w)), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_a_frozen_head_gets_no_gradient_and_the_hidden_states_do():
    h, w, targets, _ = _inputs(tokens=5)
    w = w.detach()
    logp, _ = linear_token_logprobs(h, w, targets, chunk_tokens=2)
    (grad_h,) = torch.autograd.grad(logp.sum(), (h,))
    assert grad_h.abs().sum() > 0 and w.grad is None


def test_bad_settings_are_refused():
    h, w, targets, _ = _inputs(tokens=3)
    with pytest.raises(ValueError, match="chunk_tokens"):
        linear_token_logprobs(h, w, targets, chunk_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        linear_token_logprobs(h, w, targets, temperature=0.0)


@pytest.mark.parametrize("use", ["logp", "entropy"])
def test_one_output_alone_gets_the_plain_gradients(use):
    h, w, targets, _ = _inputs(tokens=11)
    suppressed = torch.tensor([299])
    grads = []
    for fn, extra in ((plain_token_logprobs, {}), (linear_token_logprobs, {"chunk_tokens": 4})):
        logp, entropy = fn(h, w, targets, suppressed=suppressed, with_entropy=True, **extra)
        grads.append(torch.autograd.grad((logp if use == "logp" else entropy).sum(), (h, w)))
    for plain, chunked in zip(*grads, strict=True):
        torch.testing.assert_close(chunked, plain, rtol=1e-9, atol=1e-10)


def test_entropy_is_the_shannon_entropy_of_the_sampled_distribution():
    h, w, targets, _ = _inputs(tokens=6)
    suppressed = torch.tensor([0, 5])
    _, entropy = linear_token_logprobs(h, w, targets, temperature=0.5, suppressed=suppressed, chunk_tokens=4,
                                       with_entropy=True)
    logits = (h @ w.T) / 0.5
    logits[:, suppressed] = float("-inf")
    expected = torch.special.entr(torch.softmax(logits, -1)).sum(-1)
    torch.testing.assert_close(entropy, expected, rtol=1e-9, atol=1e-10)


def test_under_autocast_the_backward_forms_the_logits_as_the_forward_did():
    """bf16-mixed training: the head runs in bf16 in the forward pass; the recomputed logits of the backward
    pass must be the same bf16 ones, or p = exp(z - lse) stops summing to 1 and confident tokens get
    gradients of the wrong sign."""
    g = torch.Generator().manual_seed(0)
    h = (torch.randn(24, 32, generator=g) * 3).requires_grad_(True)
    w = torch.randn(500, 32, generator=g).requires_grad_(True)  # logits of size ~20: bf16 rounds them by ~0.06
    targets = (h.detach() @ w.detach().T).argmax(-1)  # confident tokens: the gradient is small and sign-sensitive
    upstream = torch.linspace(-1.0, 1.0, 24)
    results = []
    for fn, extra in ((plain_token_logprobs, {}), (linear_token_logprobs, {"chunk_tokens": 5})):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logp, _ = fn(h, w, targets, **extra)
        results.append((logp.detach(), *torch.autograd.grad((logp * upstream).sum(), (h, w))))
    for plain, chunked in zip(*results, strict=True):
        assert plain.dtype == chunked.dtype == torch.float32
        assert float((chunked - plain).norm() / plain.norm()) < 1e-2


def test_no_tokens_give_empty_attached_results():
    h, w, _, _ = _inputs(tokens=3)
    logp, entropy = linear_token_logprobs(h[:0], w, torch.zeros(0, dtype=torch.long), with_entropy=True)
    assert logp.shape == entropy.shape == (0,)
    (logp.sum() + entropy.sum()).backward()
    assert h.grad is not None and float(h.grad.abs().sum()) == 0.0
