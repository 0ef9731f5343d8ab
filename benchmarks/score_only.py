"""Score-only inference: our RE-Reward forward (the decoder's final states, pooled into the head, no LM
head) against the plain Hugging Face forward a user would write (`model(**batch, output_hidden_states=True)`:
full (B, T, V) logits, every layer's states, then the same pooling and head).

Same model, same batches; the scores are checked to agree before timing. Samples/s is the median over
`--repeats` passes over all samples, the paths alternating. Architectures: a tiny preset, and real-size
ones with random weights from `benchmarks/architectures/*.json` (nothing downloaded).

    .venv/bin/python benchmarks/score_only.py [--architectures tiny-qwen3.5 qwen3.5-0.8b] [--samples 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers
from model_specs import backbone_spec

from ie_eval.data.collate import EditCollator, model_inputs
from ie_eval.data.readers import read_manifest
from ie_eval.data.synth.benchmark import generate_benchmark
from ie_eval.models.heads import HeadConfig
from ie_eval.models.reward_model import RewardModel

RESULTS = Path(__file__).resolve().parent / "results" / "score_only.json"


def build(architecture: str, dtype: str) -> RewardModel:
    torch.manual_seed(0)
    preset, kwargs = backbone_spec(architecture, dtype)
    return RewardModel.build(preset, kwargs, head=HeadConfig(dropout=0.0))


def plain_scores(model: RewardModel, batch: dict) -> torch.Tensor:
    """The forward a user writes with Hugging Face: logits and all hidden states, then pool the last."""
    output = model.backbone(**model_inputs(batch), use_cache=False, output_hidden_states=True)
    return model.head(model.pool(output.hidden_states[-1], batch))


def measure(architecture: str, records: list, batch_size: int, side: int, repeats: int, device: str,
            dtype: str) -> dict:
    model = build(architecture, dtype).to(device).eval()
    collator = EditCollator(model.processor, task="reward", max_pixels=side * side, min_pixels=side * side // 2,
                            prompt_suffix=model.prompt_suffix)
    batches = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in collator(records[i : i + batch_size]).items()}
               for i in range(0, len(records), batch_size)]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def run(fn) -> float:
        sync()
        start = time.perf_counter()
        for batch in batches:
            fn(batch)
        sync()
        return time.perf_counter() - start

    with torch.no_grad():
        ours, plain = torch.cat([model(b) for b in batches]), torch.cat([plain_scores(model, b) for b in batches])
        difference = float((ours.float() - plain.float()).abs().max())
        tolerance = 1e-4 if dtype == "float32" else 5e-2
        assert difference < tolerance, f"{architecture}: our scores and the plain forward's differ by {difference}"
        times = {"ours": [], "plain": []}
        for _ in range(repeats):
            times["ours"].append(run(model))
            times["plain"].append(run(lambda b: plain_scores(model, b)))
    tokens = sum(int(b["attention_mask"].sum()) for b in batches) / len(records)
    ours_s, plain_s = statistics.median(times["ours"]), statistics.median(times["plain"])
    return {"architecture": architecture, "parameters_b": sum(p.numel() for p in model.parameters()) / 1e9,
            "vocab": model.backbone.get_output_embeddings().weight.shape[0], "samples": len(records),
            "batch_size": batch_size, "image_side": side, "tokens_per_sample": tokens, "max_abs_difference": difference,
            "ours_samples_per_s": len(records) / ours_s, "plain_samples_per_s": len(records) / plain_s,
            "speedup": plain_s / ours_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", nargs="+", default=["tiny-qwen3.5", "qwen3.5-0.8b"])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--image-side", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = generate_benchmark(Path(tmp), n_sources=max(2, args.samples // 2), seed=0)
        records = read_manifest(manifest).records[: args.samples]
        rows = [measure(a, records, args.batch_size, args.image_side, args.repeats, args.device, args.dtype)
                for a in args.architectures]
    print(f"score-only, {args.samples} samples in batches of {args.batch_size}, two {args.image_side}px images "
          f"each, {args.dtype} on {args.device}; torch {torch.__version__}")
    print("| architecture | params (B) | vocab | tokens/sample | ours samples/s | plain samples/s | speedup |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['architecture']} | {r['parameters_b']:.2f} | {r['vocab']} | {r['tokens_per_sample']:.0f} | "
              f"{r['ours_samples_per_s']:.2f} | {r['plain_samples_per_s']:.2f} | {r['speedup']:.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "score_only", "rows": rows, "settings": {k: str(v) for k, v in vars(args).items()},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "transformers": transformers.__version__},
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
