"""Where the tiny random-init model loses the image signal: one synthetic set, three learners.

RE-Reward's accuracy dimension and the critic's MOS head can only be learned through the
images. This script measures, on one source-disjoint split of a freshly synthesized benchmark
(MOS targets, pair level), the test SRCC per MOS dimension of:

- `ssim`: SSIM(source, edited), no training: the classical full-reference floor.
- `vision-direct`: the tiny preset's own vision tower (trainable, same init as the critic),
  whose merged source / edit tokens are compared directly (edit mean, mean and max |edit -
  source|) by a small MLP. No language model: how much a random-init tower can learn here.
- `decoder-image-tokens`: the same comparison, of the decoder's final states at the image-token
  positions (the full critic forward, text included).
- `critic-prefill`: the real `CriticModel` in score-only mode (prefill pooling, full fine-
  tuning, batch-standardized head input), i.e. the same tower read through the 2-layer
  decoder's last prompt token, as `make sft` trains it.

All learners see the same records, batch size, epochs, Huber loss and learning rates.

    .venv/bin/python benchmarks/vision_path.py [--sources 2000] [--epochs 8] [--out FILE]

Prints a table; writes benchmarks/results/vision_path.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from ie_eval.data.collate import EditCollator
from ie_eval.data.readers import read_manifest
from ie_eval.data.records import MOS_DIMS, EditRecord
from ie_eval.data.splits import split_records
from ie_eval.data.synth.benchmark import generate_benchmark
from ie_eval.eval.scorers import load_rgb_tensor
from ie_eval.metrics.image_quality import full_reference
from ie_eval.models.adapters import AdapterConfig
from ie_eval.models.critic import CriticModel
from ie_eval.models.heads import HeadConfig

RESULTS = Path(__file__).resolve().parent / "results" / "vision_path.json"
PRESET = "tiny-qwen3.5"
PIXELS = {"max_pixels": 128 * 128, "min_pixels": 1024}  # the tiny configs' budget: 16 tokens per image
BATCH, BACKBONE_LR, HEAD_LR = 16, 1e-3, 2e-3
LEARNERS = ("vision-direct", "decoder-image-tokens", "critic-prefill")


def srcc_per_dim(predictions: torch.Tensor, records: Sequence[EditRecord]) -> list[float]:
    truth = np.asarray([r.mos for r in records])
    return [float(spearmanr(predictions[:, j].numpy(), truth[:, j])[0]) for j in range(len(MOS_DIMS))]


def ssim_scores(records: Sequence[EditRecord]) -> torch.Tensor:
    """SSIM(source, edited) per record, repeated for each MOS dim (the synthetic images share a size)."""
    values = [full_reference("ssim", load_rgb_tensor(r.source_image), load_rgb_tensor(r.edited_image)) for r in records]
    return torch.tensor(values).unsqueeze(1).expand(-1, len(MOS_DIMS))


def compare_images(tokens: torch.Tensor) -> torch.Tensor:
    """(pair, source/edit, token, width) -> (pair, 3 * width): edit mean, mean and max |edit - source|."""
    difference = (tokens[:, 1] - tokens[:, 0]).abs()
    return torch.cat([tokens[:, 1].mean(1), difference.mean(1), difference.amax(1)], -1)


class ImageComparisonProbe(nn.Module):
    """Source / edit image tokens compared position by position, then an MLP.

    `through_decoder=False` reads the vision tower's merged tokens (no language model);
    `True` reads the decoder's final states at the same image-token positions.
    """

    def __init__(self, critic: CriticModel, through_decoder: bool) -> None:
        super().__init__()
        self.critic, self.through_decoder = critic, through_decoder
        self.image_token_id = int(critic.backbone.config.image_token_id)
        width = critic.backbone.config.get_text_config().hidden_size
        self.head = nn.Sequential(
            nn.BatchNorm1d(3 * width), nn.Linear(3 * width, 128), nn.GELU(), nn.Linear(128, len(MOS_DIMS))
        )

    def forward(self, batch: dict) -> torch.Tensor:
        pairs = batch["input_ids"].shape[0]
        if self.through_decoder:
            hidden = self.critic.final_hidden_states(batch)
            tokens = hidden[batch["input_ids"] == self.image_token_id]  # row-major: source then edit per pair
        else:
            visual = self.critic.backbone.model.visual
            tokens = visual(batch["pixel_values"], grid_thw=batch["image_grid_thw"]).pooler_output
        return self.head(compare_images(tokens.view(pairs, 2, -1, tokens.shape[-1])))


def fit_and_score(
    name: str,
    model: nn.Module,
    head: nn.Module,
    collate: Callable[[Sequence[EditRecord]], dict],
    train: list[EditRecord],
    test: list[EditRecord],
    epochs: int,
    seed: int,
) -> dict:
    head_ids = {id(p) for p in head.parameters()}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": BACKBONE_LR},
        {"params": list(head.parameters()), "lr": HEAD_LR},
    ]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    order, rng, history = list(train), random.Random(seed), []
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        rng.shuffle(order)
        total = 0.0
        for i in range(0, len(order), BATCH):
            batch = collate(order[i : i + BATCH])
            loss = nn.functional.smooth_l1_loss(model(batch), batch["mos"].float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * batch["mos"].shape[0]
        model.eval()
        with torch.no_grad():
            predictions = torch.cat([model(collate(test[i : i + 64])) for i in range(0, len(test), 64)])
        srcc = srcc_per_dim(predictions, test)
        history.append({"epoch": epoch, "train_huber": total / len(order), "test_srcc": srcc})
        print(f"  {name} epoch {epoch}: train Huber {total / len(order):.4f}, test SRCC "
              + " ".join(f"{s:.3f}" for s in srcc), flush=True)
    return {"test_srcc": history[-1]["test_srcc"], "seconds": time.perf_counter() - start, "history": history}


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = generate_benchmark(tmp, args.sources, seed=args.seed, critiques_per_pair=1, workers=2)
        pairs = read_manifest(manifest.parent / "pairs.jsonl").records
        splits = split_records(pairs, {"train": 0.8, "val": 0.1, "test": 0.1})
        train, test = splits["train"], splits["test"]
        print(f"{args.sources} sources: {len(train)} train pairs, {len(test)} test pairs", flush=True)
        results = {"ssim": {"test_srcc": srcc_per_dim(ssim_scores(test), test), "seconds": 0.0}}
        for name in LEARNERS:
            torch.manual_seed(args.seed)
            head = HeadConfig(hidden_size=128, dropout=0.0, input_norm="batch")
            critic = CriticModel.build(PRESET, {"dtype": "float32", "seed": args.seed}, head=head)
            critic.attach_adapter(AdapterConfig(kind="full"))
            collate = EditCollator(critic.processor, task="critic", mode="score", max_length=1024, **PIXELS)
            model = critic if name == "critic-prefill" else ImageComparisonProbe(critic, name == "decoder-image-tokens")
            results[name] = fit_and_score(name, model, model.head, collate, train, test, args.epochs, args.seed)
    report = {
        "benchmark": "vision_path",
        "preset": PRESET,
        "sources": args.sources,
        "train_pairs": len(train),
        "test_pairs": len(test),
        "epochs": args.epochs,
        "seed": args.seed,
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "results": results,
    }
    print(f"\n| learner | {' | '.join(MOS_DIMS)} | mean | seconds |\n|---|---|---|---|---|---|")
    for name, row in results.items():
        srcc = row["test_srcc"]
        print(f"| {name} | " + " | ".join(f"{s:.3f}" for s in srcc) + f" | {np.mean(srcc):.3f} | {row['seconds']:.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
