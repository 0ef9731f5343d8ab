"""Cross-entropy through the LM head without materializing the (N, V) logits.

At Qwen3.5's vocabulary (248,320) the logits of N critique tokens are N x V floats, and the plain
loss keeps three such tensors alive at once (the logits, their float copy or log-softmax, and the
gradient): 2 GB each for 2,000 tokens. `linear_cross_entropy` walks the tokens in chunks: per chunk
it forms the logits, the loss and the gradient `softmax - onehot` (the loss is a scalar, so its
gradient is known in the forward pass), folds it into dH = G W and dW = G^T H, and drops the chunk.
Peak memory is one chunk's logits; the matmuls are the plain loss's three, so the time is the same.
The same design as Liger-Kernel's fused linear cross-entropy and Apple's Cut Cross-Entropy, written
here in plain torch (no Triton), so it runs on CPU and GPU alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

DEFAULT_CHUNK_TOKENS = 512


@dataclass
class HeadInputs:
    """What the LM head would turn into logits: hidden states (N, H) and the head's weight (V, H)."""

    hidden: torch.Tensor
    weight: torch.Tensor

    def zero_term(self) -> torch.Tensor:
        """0 attached to both (a parameter left out of a loss still gets a gradient: DDP needs one)."""
        return self.hidden.sum() * 0.0 + self.weight.sum() * 0.0


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        tokens = hidden.shape[0]
        wants_hidden, wants_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = torch.empty_like(hidden) if wants_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if wants_weight else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, tokens, chunk):
            h, target = hidden[start : start + chunk], targets[start : start + chunk]
            logits = (h @ weight.T).float()  # as the plain path: the head in the model's dtype, the loss in fp32
            target_logit = logits.gather(-1, target[:, None])
            # One chunk-sized buffer throughout: shift, exponentiate and normalize it in place (logsumexp
            # would allocate a second one), so it ends as the softmax and then as the gradient.
            peak = logits.amax(dim=-1, keepdim=True)
            exp = logits.sub_(peak).exp_()
            mass = exp.sum(dim=-1, keepdim=True)
            total += (mass.log() + peak - target_logit).sum()
            if not (wants_hidden or wants_weight):
                continue
            grad = exp.div_(mass * tokens)  # softmax / N
            grad.scatter_add_(-1, target[:, None], torch.full_like(target_logit, -1.0 / tokens))  # - onehot / N
            grad = grad.to(hidden.dtype)  # d mean / d logits
            if wants_hidden:
                grad_hidden[start : start + chunk] = grad @ weight
            if wants_weight:
                grad_weight.addmm_(grad.T.float(), h.float())
        ctx.weight_dtype = weight.dtype
        ctx.save_for_backward(*(g for g in (grad_hidden, grad_weight) if g is not None))
        return total / tokens

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor):
        saved = list(ctx.saved_tensors)
        dh = dw = None
        # In place: the saved gradients are used once (no second backward through a loss), and a (V, H)
        # copy of the head's gradient is as large as the logits this function exists to avoid.
        if ctx.needs_input_grad[0]:
            grad_hidden = saved.pop(0)
            dh = grad_hidden.mul_(grad_output.to(grad_hidden.dtype))
        if ctx.needs_input_grad[1]:
            dw = saved.pop(0).mul_(grad_output).to(ctx.weight_dtype)
        return dh, dw, None, None


def chunkable_head(head: Any) -> bool:
    """Whether the chunked paths can read this LM head's weight: a plain bias-free Linear on whole
    weights (not wrapped by an adapter, not an FSDP DTensor or a ZeRO-3 shard)."""
    return (type(head) is torch.nn.Linear and head.bias is None and type(head.weight.data) is torch.Tensor
            and not hasattr(head.weight, "ds_id"))


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_tokens: int = DEFAULT_CHUNK_TOKENS
) -> torch.Tensor:
    """mean_i -log softmax(hidden_i W^T)[targets_i], computed `chunk_tokens` rows at a time.

    hidden: (N, H); weight: (V, H), the LM head's (no bias); targets: (N,). Equals
    `F.cross_entropy((hidden @ weight.T).float(), targets)` with its gradients; 0 (attached) when N = 0.
    """
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    if targets.numel() == 0:
        return hidden.sum() * 0.0 + weight.sum() * 0.0
    return _ChunkedLinearCrossEntropy.apply(hidden, weight, targets, int(chunk_tokens))


def plain_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The reference: the (N, V) logits, then `F.cross_entropy` in fp32."""
    return F.cross_entropy((hidden @ weight.T).float(), targets)
