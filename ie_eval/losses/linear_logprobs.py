"""Per-token log-probs (and entropies) through the LM head without materializing the (N, V) logits.

GRPO's update needs log pi(o_t) of every completion token with gradients, and the plain path keeps
the (rows, L, V) fp32 logits and their log-softmax alive until the backward pass: at Qwen3.5's
vocabulary that is 1 GB per 1,000 completion tokens and tensor. Unlike the SFT loss
(`linear_ce`), the gradient reaching each token's log-prob is only known in the backward pass
(ratios, clipping and advantages come after), so the forward walks the tokens in chunks keeping
only each token's log-sum-exp, and the backward forms each chunk's logits again. One extra head
matmul per chunk buys a peak of one chunk's logits.
"""

from __future__ import annotations

from typing import Any

import torch

from ie_eval.losses.linear_ce import DEFAULT_CHUNK_TOKENS


def _softmax_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)  # bf16 / fp16 -> fp32, fp64 stays


def _head_matmul(a: torch.Tensor, b: torch.Tensor, cast: torch.dtype | None) -> torch.Tensor:
    """a @ b in the dtype the forward pass ran the head in: autocast's (`cast`), else the inputs' own. The
    backward pass runs outside autocast, and logits formed again at another precision than `lse` was taken
    of would not normalize (bf16 logits of 20 are off by 0.06: 6% in p)."""
    with torch.autocast(a.device.type, enabled=False):
        return a.to(cast) @ b.to(cast) if cast is not None else a @ b


def _chunk_logits(h: torch.Tensor, weight: torch.Tensor, temperature: float, suppressed: torch.Tensor,
                  cast: torch.dtype | None) -> torch.Tensor:
    # As the plain path: the head in the model's (or autocast's) dtype, the softmax in (at least) fp32.
    logits = _head_matmul(h, weight.T, cast)
    logits = logits.to(_softmax_dtype(logits.dtype)).div_(temperature)
    logits[:, suppressed] = float("-inf")
    return logits


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    return torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None


class _ChunkedLinearLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, hidden, weight, targets, temperature, suppressed, chunk, with_entropy):
        logps, lses, entropies = [], [], []
        cast = _autocast_dtype(hidden.device)
        with torch.no_grad():
            for start in range(0, hidden.shape[0], chunk):
                logits = _chunk_logits(hidden[start : start + chunk], weight, temperature, suppressed, cast)
                lse = torch.logsumexp(logits, dim=-1)
                logps.append(logits.gather(-1, targets[start : start + chunk, None]).squeeze(-1) - lse)
                lses.append(lse)
                if with_entropy:
                    # H = lse - E_p[z]; suppressed entries have p = 0 and contribute nothing.
                    probs = (logits - lse[:, None]).exp_()
                    expected = (probs * logits.nan_to_num_(neginf=0.0)).sum(-1)
                    entropies.append(lse - expected)
        logp, lse = torch.cat(logps), torch.cat(lses)
        entropy = torch.cat(entropies) if with_entropy else torch.zeros_like(logp)
        ctx.save_for_backward(hidden, weight, targets, suppressed, lse, entropy)
        ctx.temperature, ctx.chunk, ctx.cast = temperature, chunk, cast
        ctx.set_materialize_grads(False)  # an output nothing depends on (a logged entropy) costs nothing
        return logp, entropy

    @staticmethod
    def backward(ctx: Any, grad_logp: torch.Tensor, grad_entropy: torch.Tensor):
        hidden, weight, targets, suppressed, lse, entropy = ctx.saved_tensors
        if grad_logp is None and grad_entropy is None:
            return None, None, None, None, None, None, None
        wants_hidden, wants_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = torch.empty_like(hidden) if wants_hidden else None
        compute = _softmax_dtype(hidden.dtype)
        grad_weight = torch.zeros_like(weight, dtype=compute) if wants_weight else None
        for start in range(0, hidden.shape[0], ctx.chunk):
            rows = slice(start, start + ctx.chunk)
            h = hidden[rows]
            logits = _chunk_logits(h, weight, ctx.temperature, suppressed, ctx.cast)
            # d logp_t / d z = onehot_t - p;  d H / d z = -p (log p + H) = -p (z - lse + H).
            if grad_entropy is None:  # the policy update's case: one chunk-sized buffer, in place throughout
                grad = logits.sub_(lse[rows, None]).exp_().mul_(-grad_logp[rows, None].to(compute))
            else:
                probs = (logits - lse[rows, None]).exp_()
                grad = torch.zeros_like(probs) if grad_logp is None else probs.mul(-grad_logp[rows, None].to(compute))
                log_p = logits.sub_(lse[rows, None]).nan_to_num_(neginf=0.0)  # p = 0 where it was -inf
                grad.sub_(probs.mul_(log_p.add_(entropy[rows, None])).mul_(grad_entropy[rows, None].to(compute)))
            if grad_logp is not None:
                grad.scatter_add_(-1, targets[rows, None], grad_logp[rows, None].to(compute))
            grad = grad.div_(ctx.temperature)  # z = logits / temperature
            if wants_hidden:
                grad_hidden[rows] = _head_matmul(grad.to(ctx.cast or hidden.dtype), weight, ctx.cast).to(hidden.dtype)
            if wants_weight:
                grad_weight.addmm_(grad.T.to(compute), h.to(compute))
        return (grad_hidden, grad_weight.to(weight.dtype) if wants_weight else None, None, None, None, None, None)


def linear_token_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 1.0,
    suppressed: torch.Tensor | None = None,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(N,) log softmax(hidden W^T / temperature)[targets], and with `with_entropy` the (N,) entropies.

    hidden: (N, H); weight: (V, H), the LM head's (no bias); targets: (N,); suppressed: token ids
    set to -inf before the softmax (the sampler never emits them). Equals `plain_token_logprobs`
    with its gradients, `chunk_tokens` rows of logits at a time.
    """
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if targets.numel() == 0:  # e.g. a micro-batch of empty completions: nothing reaches the head
        empty = torch.zeros(0, dtype=torch.float32, device=hidden.device) + (hidden.sum() + weight.sum()) * 0.0
        return empty, (empty.clone() if with_entropy else None)
    suppressed = torch.zeros(0, dtype=torch.long, device=hidden.device) if suppressed is None else suppressed
    logp, entropy = _ChunkedLinearLogprobs.apply(hidden, weight, targets, float(temperature),
                                                 suppressed.to(hidden.device, torch.long), int(chunk_tokens),
                                                 bool(with_entropy))
    return logp, (entropy if with_entropy else None)


def plain_token_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 1.0,
    suppressed: torch.Tensor | None = None,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The reference: the (N, V) logits, then log-softmax in fp32."""
    logits = (hidden @ weight.T).to(_softmax_dtype(hidden.dtype)) / temperature
    if suppressed is not None:
        logits[:, suppressed] = float("-inf")
    log_probs = torch.log_softmax(logits, dim=-1)
    logp = log_probs.gather(-1, targets[:, None]).squeeze(-1)
    entropy = None
    if with_entropy:  # lse - E_p[z], differentiable where p = 0 (entr's gradient there is infinite)
        finite = logits.masked_fill(torch.isinf(logits), 0.0)
        entropy = torch.logsumexp(logits, dim=-1) - (log_probs.exp() * finite).sum(-1)
    return logp, entropy
