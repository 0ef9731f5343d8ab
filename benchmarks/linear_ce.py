"""Critique CE (or GRPO's token log-probs) at the real vocabulary: chunked through the LM head against the plain (N, V) logits.

Both paths take the same hidden states (N, H), LM-head weight (V = 248,320, Qwen3.5's vocabulary) and
targets, and are checked to give the same loss and gradients before timing. Each path runs in its own
process, so its peak resident memory above the inputs (the kernel's high-water mark VmHWM, reset once
the inputs exist, minus the resident size then) is its own; on CUDA, the allocator's peak. Time: the median of `--repeats` forward + backward passes after one warm-up.
The head is frozen (LoRA: only dH) or trained (full fine-tuning: dH and dW).
`--objective logprobs`: GRPO's per-token log-probs (`linear_token_logprobs`, recomputing each chunk's
logits in the backward pass) against the plain log-softmax, with a fixed per-token upstream gradient
(as the clipped surrogate sends).

    .venv/bin/python benchmarks/linear_ce.py [--tokens 512] [--hidden 1024] [--vocab 248320] [--chunk 1024]
        [--objective ce|logprobs]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch
from step_timing import run_workers, time_step

from ie_eval.losses.linear_ce import linear_cross_entropy, plain_linear_cross_entropy
from ie_eval.losses.linear_logprobs import linear_token_logprobs, plain_token_logprobs

RESULTS = Path(__file__).resolve().parent / "results" / "linear_ce.json"


def inputs(tokens: int, hidden: int, vocab: int, trained_head: bool, device: str, dtype: torch.dtype):
    generator = torch.Generator().manual_seed(0)
    h = torch.randn(tokens, hidden, generator=generator).to(device, dtype).requires_grad_()
    w = (torch.randn(vocab, hidden, generator=generator) / hidden**0.5).to(device, dtype)
    targets = torch.randint(0, vocab, (tokens,), generator=generator).to(device)
    return h, w.requires_grad_(trained_head), targets


def loss_of(path: str, chunk: int, objective: str = "ce"):
    if objective == "ce":
        return plain_linear_cross_entropy if path == "plain" else (lambda h, w, t: linear_cross_entropy(h, w, t, chunk))

    def surrogate(h, w, t):
        if path == "plain":
            logp, _ = plain_token_logprobs(h, w, t)
        else:
            logp, _ = linear_token_logprobs(h, w, t, chunk_tokens=chunk)
        advantages = torch.linspace(-1.0, 1.0, t.numel(), device=h.device)
        return (logp * advantages).mean()

    return surrogate


def worker(args: argparse.Namespace) -> dict:
    """One path in this process: its time per pass and its peak memory above the inputs."""
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    h, w, targets = inputs(args.tokens, args.hidden, args.vocab, args.trained_head, args.device, dtype)
    fn = loss_of(args.path, args.chunk, args.objective)

    def step() -> None:
        h.grad = w.grad = None
        fn(h, w, targets).backward()

    return time_step(step, args.repeats, args.device)


def check_agreement(tokens: int, hidden: int, vocab: int, chunk: int, device: str, dtype: torch.dtype,
                    objective: str) -> float:
    """Max relative difference of loss, dH and dW between the paths (on a slice small enough to run both)."""
    h, w, targets = inputs(tokens, hidden, vocab, True, device, dtype)
    results = []
    for path in ("plain", "chunked"):
        loss = loss_of(path, chunk, objective)(h, w, targets)
        results.append([loss.detach(), *torch.autograd.grad(loss, (h, w))])
    chunked, plain = results[1], results[0]
    return max(float((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-12))
               for a, b in zip(chunked, plain, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=248320)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--objective", choices=("ce", "logprobs"), default="ce")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", choices=("plain", "chunked"), help=argparse.SUPPRESS)
    parser.add_argument("--trained-head", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    difference = check_agreement(min(args.tokens, 256), args.hidden, args.vocab, min(args.chunk, 64), args.device,
                                 getattr(torch, args.dtype), args.objective)
    tolerance = 1e-4 if args.dtype == "float32" else 2e-2
    assert difference < tolerance, f"chunked and plain {args.objective} disagree: relative difference {difference:.2e}"
    base = ["--tokens", str(args.tokens), "--hidden", str(args.hidden), "--vocab", str(args.vocab),
            "--chunk", str(args.chunk), "--repeats", str(args.repeats), "--device", args.device, "--dtype", args.dtype,
            "--objective", args.objective]
    rows = []
    for trained_head in (False, True):
        measured = run_workers(__file__, base + (["--trained-head"] if trained_head else []), ("plain", "chunked"))
        plain, chunked = measured["plain"], measured["chunked"]
        rows.append({
            "head": "trained" if trained_head else "frozen",
            "plain_s": plain["seconds"], "chunked_s": chunked["seconds"],
            "time_ratio": chunked["seconds"] / plain["seconds"],
            "plain_peak_mb": plain["peak_bytes_above_inputs"] / 2**20,
            "chunked_peak_mb": chunked["peak_bytes_above_inputs"] / 2**20,
            "memory_ratio": chunked["peak_bytes_above_inputs"] / max(1, plain["peak_bytes_above_inputs"]),
        })
    print(f"{args.objective}: tokens {args.tokens}, hidden {args.hidden}, vocab {args.vocab}, chunk {args.chunk}, {args.dtype} on "
          f"{args.device}; paths agree to {difference:.1e} (relative)")
    print("| LM head | plain s | chunked s | time ratio | plain peak MB | chunked peak MB | memory ratio |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['head']} | {row['plain_s']:.2f} | {row['chunked_s']:.2f} | {row['time_ratio']:.2f} | "
              f"{row['plain_peak_mb']:.0f} | {row['chunked_peak_mb']:.0f} | {row['memory_ratio']:.3f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k in ("tokens", "hidden", "vocab", "chunk", "repeats", "device",
                                                             "dtype", "objective")}
    args.out.write_text(json.dumps({
        "benchmark": "linear_ce" if args.objective == "ce" else "linear_logprobs", "settings": settings, "agreement_relative": difference, "rows": rows,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
