"""`ie-eval report RUN_DIR... --out DIR`: several runs side by side (what goes in: `ie_eval/eval/report.py`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ie_eval.eval.report import build_report


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="ie-eval report", description="Several evaluation and training runs side by side.")
    parser.add_argument("runs", nargs="+", help="ie-eval eval output dirs and/or training run dirs")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(list(argv))
    report = build_report(args.runs, args.out)
    print(report.read_text())
    print(f"wrote {report}")
    return 0
