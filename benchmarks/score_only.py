"""Score-only inference: our RE-Reward forward (the decoder's final states, pooled into the head, no LM
head) against the plain Hugging Face forward a user would write (`model(**batch, output_hidden_states=True)`:
full (B, T, V) logits, every layer's states, then the same pooling and head).

Two workloads. `--critiques-per-edit 1`: every sample is its own edit (nothing to share). G > 1: the
samples are G critiques of each edit, as GRPO scores a step's completions, and ours is also timed with
each edit's shared prefix (images and instruction) run once (`RewardModel.score_shared_prefixes`).

Same model, same batches; the scores are checked to agree before timing. Samples/s is the median over
`--repeats` passes over all samples, the paths alternating. Architectures: a tiny preset, and real-size
ones with random weights from `benchmarks/architectures/*.json` (nothing downloaded).

    .venv/bin/python benchmarks/score_only.py [--architectures tiny-qwen3.5 qwen3.5-0.8b] [--samples 8]
        [--critiques-per-edit 8]
"""

from __future__ import annotations

import argparse
import dataclasses
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


def measure(model: RewardModel, architecture: str, records: list, batch_size: int, side: int, repeats: int,
            device: str, dtype: str, critiques_per_edit: int = 1) -> dict:
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

    paths = {"ours": model, "plain": lambda b: plain_scores(model, b)}
    if critiques_per_edit > 1:
        paths["ours_shared"] = model.score_shared_prefixes
    tolerance = 1e-4 if dtype == "float32" else 5e-2
    with torch.no_grad():
        scores = {name: torch.cat([fn(b) for b in batches]).float() for name, fn in paths.items()}
        difference = max(float((scores[name] - scores["plain"]).abs().max()) for name in paths)
        assert difference < tolerance, f"{architecture}: our scores and the plain forward's differ by {difference}"
        times = {name: [] for name in paths}
        for _ in range(repeats):
            for name, fn in paths.items():
                times[name].append(run(fn))
    tokens = sum(int(b["attention_mask"].sum()) for b in batches) / len(records)
    seconds = {name: statistics.median(values) for name, values in times.items()}
    row = {"architecture": architecture, "parameters_b": sum(p.numel() for p in model.parameters()) / 1e9,
           "vocab": model.backbone.get_output_embeddings().weight.shape[0], "samples": len(records),
           "critiques_per_edit": critiques_per_edit, "batch_size": batch_size, "image_side": side,
           "tokens_per_sample": tokens, "max_abs_difference": difference}
    for name, value in seconds.items():
        row[f"{name}_samples_per_s"] = len(records) / value
    row["speedup"] = seconds["plain"] / seconds["ours"]
    if "ours_shared" in seconds:
        row["shared_speedup"] = seconds["plain"] / seconds["ours_shared"]
    return row


def edit_records(records: list, samples: int, critiques_per_edit: int) -> list:
    """`samples` records: each edit's images and instruction with `critiques_per_edit` different critiques
    (other records' critiques), an edit's records next to each other as `RewardScoring` orders them."""
    critiques = [r.critique for r in records]
    out = []
    for index in range(samples):
        edit = records[index // critiques_per_edit]
        out.append(dataclasses.replace(edit, pair_id=f"{edit.pair_id}-c{index}", critique=critiques[index]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", nargs="+", default=["tiny-qwen3.5", "qwen3.5-0.8b"])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--critiques-per-edit", type=int, nargs="+", default=[1],
                        help="G critiques scored per edit (GRPO's workload), one row each; 1: every sample its own edit")
    parser.add_argument("--image-side", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = generate_benchmark(Path(tmp), n_sources=max(2, args.samples // 2), seed=0)
        records = [r for r in read_manifest(manifest).records if r.critique][: args.samples]
        if len(records) < args.samples:
            raise SystemExit(f"the synthetic benchmark gave {len(records)} critiqued records, --samples is {args.samples}")
        rows = []
        for architecture in args.architectures:
            model = build(architecture, args.dtype).to(args.device).eval()  # built once: a 9B takes a while
            rows += [measure(model, architecture, edit_records(records, args.samples, g), args.batch_size,
                             args.image_side, args.repeats, args.device, args.dtype, g)
                     for g in args.critiques_per_edit]
            del model
    print(f"score-only, {args.samples} samples in batches of {args.batch_size}, two {args.image_side}px images "
          f"each, {args.dtype} on {args.device}; torch {torch.__version__}")
    print("| architecture | params (B) | vocab | critiques per edit | tokens/sample | plain samples/s | ours samples/s "
          "| speedup | ours shared samples/s | shared speedup |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        shared = (f"{r['ours_shared_samples_per_s']:.2f} | {r['shared_speedup']:.2f}" if "shared_speedup" in r
                  else "- | -")
        print(f"| {r['architecture']} | {r['parameters_b']:.2f} | {r['vocab']} | {r['critiques_per_edit']} | "
              f"{r['tokens_per_sample']:.0f} | {r['plain_samples_per_s']:.2f} | {r['ours_samples_per_s']:.2f} | "
              f"{r['speedup']:.2f} | {shared} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "score_only", "rows": rows, "settings": {k: str(v) for k, v in vars(args).items()},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "transformers": transformers.__version__},
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
