"""Perception report of a backbone on held-out synthetic-world samples (see ie_eval.eval.perception).

Greedy-decoded descriptions scored per attribute (size, colour, shape, cell, background, look),
change descriptions per change type, and claim verification, each with the images, with blank
images and against chance, for one backbone (default: the shipped `tiny-qwen3.5-synth` preset).

    .venv/bin/python benchmarks/perception.py [--backbone tiny-qwen3.5-synth] [--count 500] [--out FILE]

Prints the table; writes benchmarks/results/perception.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="tiny-qwen3.5-synth", help="preset name or checkpoint directory")
    parser.add_argument("--count", type=int, default=500, help="held-out samples per task")
    parser.add_argument("--seed", type=int, default=0, help="world seed (the pretraining run's)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(RESULTS / "perception.json"))
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.threads:
        torch.set_num_threads(args.threads)

    from ie_eval.eval.perception import perception_report, report_table
    from ie_eval.models.backbone import load_backbone

    backbone = load_backbone(args.backbone)
    started = time.perf_counter()
    report = perception_report(backbone.model, backbone.processor, count=args.count, seed=args.seed,
                               batch_size=args.batch_size)
    seconds = time.perf_counter() - started
    table = report_table(report)
    print(f"perception of {args.backbone} on {args.count} held-out samples per task (greedy decoding)\n{table}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "backbone": args.backbone, "count": args.count, "seed": args.seed, "seconds": round(seconds, 1),
        "machine": platform.machine(), "torch_threads": torch.get_num_threads(), "report": report, "table": table,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out} ({seconds:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
