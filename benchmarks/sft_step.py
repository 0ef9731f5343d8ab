"""A critic SFT step: ours (`CriticModel.sft_forward`: LM logits only at the critique tokens, chunked CE; plus
the head's Huber) against the plain Hugging Face step (`model(**batch, labels=..., output_hidden_states=True)`:
logits at every position, HF's own loss, the same pooled head and Huber). AdamW; full fine-tuning, or LoRA
on the language projections with the LM head frozen (`--adapter lora`, as the critic's SFT configs train).

Same model and batch; the two losses are checked to agree before timing. Each path runs in its own process
(peak resident memory above the model and batch = the kernel's VmHWM, reset once they exist). Tokens/s counts
every (unpadded) token of the batch. `--vocab` builds the preset with a real-size vocabulary (248,320: Qwen3.5)
and `--hidden` / `--layers` resize it, so the LM head's share is a real model's.

    .venv/bin/python benchmarks/sft_step.py [--vocab 248320] [--hidden 256] [--layers 4] [--batch 4] [--adapter full|lora]
        [--architecture qwen3.5-4b --device cuda --dtype bfloat16 --image-side 512]   (the GPU suite's run)
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
from model_specs import backbone_spec
from step_timing import optimizer_step, run_workers, time_step

from ie_eval.data.collate import EditCollator, model_inputs
from ie_eval.data.phased import sft_targets
from ie_eval.data.readers import read_manifest
from ie_eval.data.synth.benchmark import generate_benchmark
from ie_eval.losses.regression import huber_loss
from ie_eval.losses.sft import SFTLossConfig, sft_loss
from ie_eval.models.adapters import AdapterConfig
from ie_eval.models.critic import CriticModel
from ie_eval.models.heads import HeadConfig

RESULTS = Path(__file__).resolve().parent / "results" / "sft_step.json"


def build(args: argparse.Namespace) -> tuple[CriticModel, dict]:
    torch.manual_seed(0)
    if args.architecture:  # a bundled real-size architecture (random weights)
        preset, overrides = backbone_spec(args.architecture, args.dtype)
    else:
        preset = "tiny-qwen3.5"
        overrides = {"hidden_size": args.hidden, "intermediate_size": 4 * args.hidden,
                     "num_hidden_layers": args.layers, "dtype": args.dtype,
                     "layer_types": ["linear_attention", "full_attention"] * (args.layers // 2)}
        if args.vocab:
            overrides["vocab_size"] = args.vocab
    model = CriticModel.build(preset, overrides, head=HeadConfig(hidden_size=64, dropout=0.0)).to(args.device)
    model.attach_adapter(AdapterConfig(kind=args.adapter, dropout=0.0))
    if args.adapter == "lora":
        model.backbone.get_output_embeddings().requires_grad_(False)
    model.train()
    records = sft_targets(read_manifest(Path(args.manifest)).records, "best", "structured")[: args.batch]
    pixels = args.image_side**2
    batch = EditCollator(model.processor, task="critic", mode="train", max_pixels=pixels, min_pixels=pixels // 4,
                         max_length=8192)(records)
    return model, {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}


def ours_loss(model: CriticModel, batch: dict) -> torch.Tensor:
    outputs = model.sft_forward(batch)
    config = SFTLossConfig()
    return sft_loss(outputs.token_predictions(config.ce_chunk_tokens), outputs.token_targets, outputs.scores,
                    batch["mos"], batch["mos_mask"], config)["loss"]


def plain_loss(model: CriticModel, batch: dict) -> torch.Tensor:
    output = model.backbone(**model_inputs(batch, with_labels=True), use_cache=False, output_hidden_states=True)
    scores = model.head(model.pool(output.hidden_states[-1], batch))
    return output.loss + huber_loss(scores, torch.nan_to_num(batch["mos"]), 1.0, batch["mos_mask"].bool())


PATHS = {"ours": ours_loss, "plain": plain_loss}


def worker(args: argparse.Namespace) -> dict:
    model, batch = build(args)
    step = optimizer_step(model, lambda: PATHS[args.path](model, batch))
    counts = {"tokens": int(batch["attention_mask"].sum()), "critique_tokens": int((batch["labels"] != -100).sum())}
    return time_step(step, args.repeats, args.device) | counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=248320)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--adapter", choices=("full", "lora"), default="full")
    parser.add_argument("--architecture", help="a bundled architecture (benchmarks/architectures) instead of the sizes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--image-side", type=int, default=128)
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
            model.eval()  # no dropout in the check
            ours, plain = float(ours_loss(model, batch)), float(plain_loss(model, batch))
        tolerance = 1e-4 if args.dtype == "float32" else 2e-2
        assert abs(ours - plain) < tolerance * max(1.0, abs(plain)), f"losses differ: ours {ours}, plain {plain}"
        del model
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()  # the workers measure their own peaks on the same device
        base = ["--manifest", args.manifest, "--vocab", str(args.vocab),
                "--hidden", str(args.hidden), "--layers", str(args.layers), "--batch", str(args.batch),
                "--repeats", str(args.repeats), "--adapter", args.adapter,
                "--device", args.device, "--dtype", args.dtype, "--image-side", str(args.image_side)]
        if args.architecture:
            base += ["--architecture", args.architecture]
        measured = run_workers(__file__, base, ("plain", "ours"))
    rows = [{"path": path, "step_s": m["seconds"], "tokens_per_s": m["tokens"] / m["seconds"],
             "peak_mb": m["peak_bytes_above_inputs"] / 2**20, "tokens": m["tokens"],
             "critique_tokens": m["critique_tokens"]} for path, m in measured.items()]
    speedup = measured["plain"]["seconds"] / measured["ours"]["seconds"]
    memory = measured["ours"]["peak_bytes_above_inputs"] / max(1, measured["plain"]["peak_bytes_above_inputs"])
    sizes = args.architecture or f"tiny Qwen3.5 at hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}"
    print(f"SFT step ({args.adapter}), {sizes}, {args.dtype} on {args.device}; batch "
          f"{args.batch} ({rows[0]['tokens']} tokens, {rows[0]['critique_tokens']} critique); losses agree "
          f"({ours:.5f} vs {plain:.5f})")
    print("| path | step s | tokens/s | peak MB above inputs |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['path']} | {r['step_s']:.2f} | {r['tokens_per_s']:.0f} | {r['peak_mb']:.0f} |")
    print(f"ours / plain tokens/s: {speedup:.2f}; peak memory ratio {memory:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "sft_step", "rows": rows, "speedup": speedup, "memory_ratio": memory,
        "losses": {"ours": ours, "plain": plain},
        "settings": {k: v for k, v in vars(args).items() if k in ("vocab", "hidden", "layers", "batch", "repeats", "adapter",
                                                                    "architecture", "device", "dtype", "image_side")},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "transformers": transformers.__version__},
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
