"""`ie-eval data ...`: dataset tools. Subcommands: `synth` (procedural benchmark)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def _synth_defaults() -> dict[str, object]:
    """Defaults come from SynthOptions, the single place they are set."""
    from ie_eval.data.synth import SynthOptions

    return {
        f.name: f.default for f in dataclasses.fields(SynthOptions) if f.default is not dataclasses.MISSING
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ie-eval data", description="Dataset tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    defaults = _synth_defaults()
    synth = commands.add_parser(
        "synth",
        help="write the procedural edit-evaluation benchmark",
        description="Generate source scenes, twin edits, candidate critiques and simulated ratings.",
    )
    synth.add_argument("--out", required=True, help="output folder (manifest.jsonl, pairs.jsonl, images/)")
    synth.add_argument("--n-sources", type=int, required=True, help="number of source scenes")
    synth.add_argument("--seed", type=int, default=defaults["seed"])
    synth.add_argument(
        "--edits-per-source",
        type=int,
        default=defaults["edits_per_source"],
        help="edited pairs per source; even: two edits per instruction",
    )
    synth.add_argument("--critiques-per-pair", type=int, default=defaults["critiques_per_pair"])
    synth.add_argument(
        "--image-size", type=int, default=defaults["image_size"], help="square image side in pixels"
    )
    synth.add_argument(
        "--annotators", type=int, default=defaults["annotators"], help="simulated raters per item"
    )
    synth.add_argument(
        "--max-objects", type=int, default=defaults["max_objects"], help="objects per scene, 1..4"
    )
    synth.add_argument("--workers", type=int, default=defaults["workers"], help="processes building sources")
    synth.add_argument(
        "--optimism-percent", type=int, default=defaults["optimism_percent"],
        help="%% of critiques describing the better edit of an instruction (MLLM critics skew positive)",
    )
    return parser


def count_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as handle:
        return sum(1 for _ in handle)


def run_synth(args: argparse.Namespace) -> int:
    from ie_eval.data.synth import generate_benchmark

    started = time.perf_counter()
    manifest = generate_benchmark(
        args.out,
        args.n_sources,
        args.seed,
        edits_per_source=args.edits_per_source,
        critiques_per_pair=args.critiques_per_pair,
        image_size=args.image_size,
        annotators=args.annotators,
        max_objects=args.max_objects,
        workers=args.workers,
        optimism_percent=args.optimism_percent,
    )
    seconds = time.perf_counter() - started
    records, pairs = count_lines(manifest), count_lines(manifest.parent / "pairs.jsonl")
    print(
        f"wrote {records} records ({pairs} pairs, {args.n_sources} sources) to {manifest} in {seconds:.2f}s"
    )
    from ie_eval.data.records import ALL_DIMS
    from ie_eval.data.synth.ceiling import ceiling_line, read_noise_ceiling

    print(ceiling_line(read_noise_ceiling(manifest), ALL_DIMS))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_request:  # --help or a usage error: argparse already printed why
        return int(exit_request.code or 0)
    try:
        if args.command == "synth":
            return run_synth(args)
    except ValueError as error:
        print(f"ie-eval data {args.command}: {error}", file=sys.stderr)
        return 2
    return 2
