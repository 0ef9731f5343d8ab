"""`ie-eval score --ckpt DIR --manifest M --out OUT.jsonl`: RE-Reward scores of every manifest row.

Score-only mode: one prefill per row, no generation, rows batched in length-sorted order
through the same path the reward server uses, results written in manifest order.

Resumable: rows are appended to OUT.jsonl.partial as their batches finish, and OUT is written from
them at the end. A rerun after an interruption (same --ckpt, --manifest, --max-pixels) scores only
the rows the partial file lacks; a finished OUT is refused unless --overwrite, which also starts an
interrupted run over.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from ie_eval.commands.outputs import PartialRows, add_output_flags, refuse_existing, write_rows_atomically
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
    out = Path(args.out)
    run = {"ckpt": str(Path(args.ckpt).resolve()), "manifest": str(Path(args.manifest).resolve()),
           "max_pixels": args.max_pixels}
    with PartialRows(out, run, key="sample_id", overwrite=args.overwrite) as partial:
        todo = [r for r in read.records if r.sample_id not in partial.done]
        for indices, scores in scoring.scored_batches(todo, progress="scoring"):
            partial.append(score_row(todo[i], s) for i, s in zip(indices, scores, strict=True))
        write_rows_atomically((partial.done[r.sample_id] for r in read.records), out)
        partial.remove()
    resumed = len(read.records) - len(todo)
    print(f"scored {len(todo)} rows ({resumed} from an interrupted run) in {time.perf_counter() - started:.1f}s -> {out}")
    return 0


def score_row(record, scores) -> dict:
    """One output row: the record's ids and its scores (RewardScores.as_dict)."""
    return {"sample_id": record.sample_id, "pair_id": record.pair_id, "critique_id": record.critique_id} | scores.as_dict()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
