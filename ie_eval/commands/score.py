"""`ie-eval score --ckpt DIR --manifest M --out OUT.jsonl`: RE-Reward scores of every manifest row.

Score-only mode: one prefill per row, no generation, rows batched in length-sorted order
through the same path the reward server uses, results written in manifest order.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from ie_eval.commands.outputs import add_output_flags, refuse_existing
from ie_eval.progress import disable_progress


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ie-eval score", description=__doc__)
    parser.add_argument("--ckpt", required=True, help="a RewardModel.save_pretrained directory")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-pixels", type=int, default=None, help="per-image pixel budget (default: the training one)")
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--no-strict", action="store_true", help="skip bad rows (counted) instead of failing")
    add_output_flags(parser)
    args = parser.parse_args(argv)
    refuse_existing([args.out], args.overwrite)
    if args.no_progress:
        disable_progress()

    from ie_eval.data.readers import read_manifest
    from ie_eval.models.reward_model import RewardModel
    from ie_eval.serve.scoring import RewardScoring

    started = time.perf_counter()
    read = read_manifest(args.manifest, strict=not args.no_strict)
    if read.skipped:
        print(read.summary())
    model = RewardModel.from_pretrained(args.ckpt, device=args.device)
    scoring = RewardScoring(model, batch_size=args.batch_size, max_pixels=args.max_pixels)  # None: the export's budget
    scores = scoring.score_records(read.records, progress="scoring")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for record, score in zip(read.records, scores, strict=True):
            row = {"sample_id": record.sample_id, "pair_id": record.pair_id, "critique_id": record.critique_id}
            handle.write(json.dumps(row | score.as_dict()) + "\n")
    print(f"scored {len(scores)} rows in {time.perf_counter() - started:.1f}s -> {out}")
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
