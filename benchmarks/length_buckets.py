"""RE-Reward training epochs with uniformly shuffled batches against length-bucketed ones
(`data.length_bucket_batches`): padded tokens and samples/s, same records, sampler selection and model.
Also scoring: `RewardScoring.score_records` (length-sorted batches, always on) against the same batches
cut in dataset order; the scores are checked to agree.

One process; the two modes alternate for `--rounds` rounds (the median kept). Each epoch is the real
train loader of `EditDataModule` (stratified sampler, collator) and our forward + backward + AdamW step.

    .venv/bin/python benchmarks/length_buckets.py [--batch 8] [--window 8] [--hidden 256] [--layers 4]
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

from ie_eval.data.datamodule import EditDataModule
from ie_eval.data.synth.benchmark import generate_benchmark
from ie_eval.losses.composite import RewardLoss, RewardLossConfig
from ie_eval.models.adapters import AdapterConfig
from ie_eval.models.heads import HeadConfig
from ie_eval.models.reward_model import RewardModel
from ie_eval.serve.scoring import RewardScoring

RESULTS = Path(__file__).resolve().parent / "results" / "length_buckets.json"


def epoch(model: RewardModel, data: EditDataModule, optimizer, loss_fn, limit: int | None = None) -> dict:
    loader = data.train_dataloader()
    samples = real = padded = 0
    start = time.perf_counter()
    for step, batch in enumerate(loader):
        if limit is not None and step >= limit:
            break
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(batch), batch["critique_scores"])["loss"].backward()
        optimizer.step()
        samples += batch["attention_mask"].shape[0]
        real += int(batch["attention_mask"].sum())
        padded += batch["attention_mask"].numel()
    return {"seconds": time.perf_counter() - start, "samples": samples, "tokens": real, "padded_tokens": padded}


def compare_scoring(model: RewardModel, records: list, args: argparse.Namespace) -> dict:
    model.eval()
    scoring = RewardScoring(model, batch_size=args.batch, max_pixels=128 * 128)
    chunks = [records[k : k + args.batch] for k in range(0, len(records), args.batch)]
    order = sorted(range(len(records)), key=lambda i: -len(records[i].instruction) - len(records[i].critique or ""))
    paths = {
        "dataset order": lambda: [s for chunk in chunks for s in scoring.score_batch(chunk)],
        "length-sorted": lambda: scoring.score_records(records),
    }
    padded = {"dataset order": sum(scoring.collator(c)["attention_mask"].numel() for c in chunks),
              "length-sorted": sum(scoring.collator([records[i] for i in order[k : k + args.batch]])["attention_mask"]
                                   .numel() for k in range(0, len(order), args.batch))}
    scoring.score_batch(chunks[0])  # warm-up, untimed
    rows, outputs = {}, {}
    for mode in ("dataset order", "length-sorted") * args.rounds:
        start = time.perf_counter()
        outputs[mode] = paths[mode]()
        rows.setdefault(mode, []).append(time.perf_counter() - start)
    for a, b in zip(outputs["dataset order"], outputs["length-sorted"], strict=True):
        assert abs(a.reward - b.reward) < 1e-4, (a, b)
    model.train()
    return {mode: {"seconds": statistics.median(t), "samples_per_s": len(records) / statistics.median(t),
                   "padded_tokens": padded[mode]} for mode, t in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--sources", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.manual_seed(0)
    overrides = {"hidden_size": args.hidden, "intermediate_size": 4 * args.hidden, "num_hidden_layers": args.layers,
                 "layer_types": ["linear_attention", "full_attention"] * (args.layers // 2)}
    model = RewardModel.build("tiny-qwen3.5", overrides, head=HeadConfig(hidden_size=64, dropout=0.0))
    model.attach_adapter(AdapterConfig(kind="lora", dropout=0.0))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    loss_fn = RewardLoss(RewardLossConfig(), num_dims=3)
    measured: dict[str, list[dict]] = {"uniform": [], "bucketed": []}
    with tempfile.TemporaryDirectory() as tmp:
        manifest = generate_benchmark(Path(tmp), n_sources=args.sources, seed=0)
        modules = {}
        for mode, window in (("uniform", None), ("bucketed", args.window)):
            data = EditDataModule(str(manifest), batch_size=args.batch, max_pixels=128 * 128, min_pixels=64 * 64,
                                  length_bucket_batches=window)
            data.processor = model.processor
            data.setup("fit")
            modules[mode] = data
        epoch(model, modules["uniform"], optimizer, loss_fn, limit=2)  # warm-up, untimed
        for _ in range(args.rounds):
            for mode, data in modules.items():
                measured[mode].append(epoch(model, data, optimizer, loss_fn))
        scoring_rows = compare_scoring(model, modules["uniform"].splits["train"], args)
    rows = {}
    for mode, runs in measured.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        rows[mode] = {"epoch_s": seconds, "samples_per_s": runs[0]["samples"] / seconds, "samples": runs[0]["samples"],
                      "tokens": runs[0]["tokens"], "padded_tokens": runs[0]["padded_tokens"],
                      "padding_fraction": 1 - runs[0]["tokens"] / runs[0]["padded_tokens"]}
    assert rows["uniform"]["tokens"] == rows["bucketed"]["tokens"], "the two epochs must hold the same samples"
    speedup = rows["bucketed"]["samples_per_s"] / rows["uniform"]["samples_per_s"]
    print(f"RE-Reward epoch, tiny Qwen3.5 at hidden {args.hidden}, {args.layers} layers, LoRA; batch {args.batch}, "
          f"window {args.window} batches; {rows['uniform']['samples']} samples, {rows['uniform']['tokens']} tokens")
    print("| batches | epoch s | samples/s | padded tokens | padding |")
    print("|---|---|---|---|---|")
    for mode, row in rows.items():
        print(f"| {mode} | {row['epoch_s']:.2f} | {row['samples_per_s']:.1f} | {row['padded_tokens']} | "
              f"{row['padding_fraction']:.1%} |")
    print(f"bucketed / uniform samples/s: {speedup:.2f}")
    print("| scoring batches | s | samples/s | padded tokens |")
    print("|---|---|---|---|")
    for mode, row in scoring_rows.items():
        print(f"| {mode} | {row['seconds']:.2f} | {row['samples_per_s']:.1f} | {row['padded_tokens']} |")
    scoring_speedup = scoring_rows["length-sorted"]["samples_per_s"] / scoring_rows["dataset order"]["samples_per_s"]
    print(f"length-sorted / dataset-order scoring samples/s: {scoring_speedup:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "length_buckets", "rows": rows, "speedup": speedup, "scoring_rows": scoring_rows,
        "scoring_speedup": scoring_speedup,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
    }, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
