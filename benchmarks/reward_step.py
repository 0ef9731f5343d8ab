"""An RE-Reward training step: ours (`RewardModel.forward`: the decoder's final states, pooled at the anchor,
no LM head) against the plain Hugging Face step (`model(**batch, output_hidden_states=True)`: logits at every
position and every layer's states, then the same pooling and head). Same composite loss (Huber + ranking +
PLCC, fresh queues), AdamW, LoRA (the LM head frozen, as RE-Reward trains) or full fine-tuning.

Same model and batch; the two losses are checked to agree before timing. Each path runs in its own process
(peak resident memory above the model and batch, as `sft_step.py`). Tokens/s counts every unpadded token.

    .venv/bin/python benchmarks/reward_step.py [--vocab 248320] [--hidden 256] [--layers 4] [--batch 8]
        [--adapter lora|full]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch
import transformers
from step_timing import optimizer_step, run_workers, time_step

from ie_eval.data.collate import EditCollator, model_inputs
from ie_eval.data.readers import read_manifest
from ie_eval.data.synth.benchmark import generate_benchmark
from ie_eval.losses.composite import RewardLoss, RewardLossConfig
from ie_eval.models.adapters import AdapterConfig
from ie_eval.models.heads import HeadConfig
from ie_eval.models.reward_model import RewardModel

RESULTS = Path(__file__).resolve().parent / "results" / "reward_step.json"


def build(args: argparse.Namespace) -> tuple[RewardModel, dict]:
    torch.manual_seed(0)
    overrides = {"hidden_size": args.hidden, "intermediate_size": 4 * args.hidden, "num_hidden_layers": args.layers,
                 "layer_types": ["linear_attention", "full_attention"] * (args.layers // 2), "vocab_size": args.vocab}
    model = RewardModel.build("tiny-qwen3.5", overrides, head=HeadConfig(hidden_size=64, dropout=0.0))
    model.attach_adapter(AdapterConfig(kind=args.adapter, dropout=0.0))
    model.train()
    records = [r for r in read_manifest(Path(args.manifest)).records if r.critique_scores][: args.batch]
    batch = EditCollator(model.processor, task="reward", mode="train", max_pixels=128 * 128, min_pixels=64 * 64,
                         max_length=8192)(records)
    return model, batch


def ours_scores(model: RewardModel, batch: dict) -> torch.Tensor:
    return model(batch)


def plain_scores(model: RewardModel, batch: dict) -> torch.Tensor:
    output = model.backbone(**model_inputs(batch), use_cache=False, output_hidden_states=True)
    return model.head(model.pool(output.hidden_states[-1], batch))


PATHS = {"ours": ours_scores, "plain": plain_scores}


def loss(model: RewardModel, batch: dict, path: str) -> torch.Tensor:
    loss_fn = RewardLoss(RewardLossConfig(), num_dims=batch["critique_scores"].shape[1])
    return loss_fn(PATHS[path](model, batch), batch["critique_scores"])["loss"]


def worker(args: argparse.Namespace) -> dict:
    model, batch = build(args)
    step = optimizer_step(model, lambda: loss(model, batch, args.path))
    return time_step(step, args.repeats, "cpu") | {"tokens": int(batch["attention_mask"].sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=248320)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--adapter", choices=("full", "lora"), default="lora")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", choices=sorted(PATHS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        args.manifest = str(generate_benchmark(Path(tmp), n_sources=max(2, args.batch), seed=0))
        model, batch = build(args)
        with torch.no_grad():
            model.eval()
            ours, plain = float(loss(model, batch, "ours")), float(loss(model, batch, "plain"))
        assert abs(ours - plain) < 1e-4 * max(1.0, abs(plain)), f"losses differ: ours {ours}, plain {plain}"
        del model
        base = ["--manifest", args.manifest, "--vocab", str(args.vocab),
                "--hidden", str(args.hidden), "--layers", str(args.layers), "--batch", str(args.batch),
                "--repeats", str(args.repeats), "--adapter", args.adapter]
        measured = run_workers(__file__, base, ("plain", "ours"))
    rows = [{"path": path, "step_s": m["seconds"], "tokens_per_s": m["tokens"] / m["seconds"],
             "peak_mb": m["peak_bytes_above_inputs"] / 2**20, "tokens": m["tokens"]} for path, m in measured.items()]
    speedup = measured["plain"]["seconds"] / measured["ours"]["seconds"]
    memory = measured["ours"]["peak_bytes_above_inputs"] / max(1, measured["plain"]["peak_bytes_above_inputs"])
    print(f"RE-Reward step ({args.adapter}), tiny Qwen3.5 at hidden {args.hidden}, {args.layers} layers, vocab "
          f"{args.vocab}; batch {args.batch} ({rows[0]['tokens']} tokens); losses agree ({ours:.5f} vs {plain:.5f})")
    print("| path | step s | tokens/s | peak MB above inputs |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['path']} | {r['step_s']:.2f} | {r['tokens_per_s']:.0f} | {r['peak_mb']:.0f} |")
    print(f"ours / plain tokens/s: {speedup:.2f}; peak memory ratio {memory:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "reward_step", "rows": rows, "speedup": speedup, "memory_ratio": memory,
        "losses": {"ours": ours, "plain": plain},
        "settings": {k: v for k, v in vars(args).items() if k in ("vocab", "hidden", "layers", "batch", "repeats", "adapter")},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "transformers": transformers.__version__},
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
