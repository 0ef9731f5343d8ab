"""What the tool commands share about their outputs: refuse to write over an earlier run's, and the flags.

A rerun into the same `--out` would silently replace results someone may still need (a table in a
paper draft, critiques being annotated), so it stops with the path and the flag that allows it.
Training runs get the same refusal from `ie-eval fit` (ie_eval/commands/fit.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from ie_eval.progress import NO_PROGRESS_ENV

OVERWRITE_FLAG = "--overwrite"


class OutputExistsError(SystemExit):
    """An earlier run's output is where this run would write; the message names it and the way on.
    A SystemExit, so the command ends with the message (exit status 1), not a traceback."""


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    """`--overwrite` and `--no-progress`, as every command that writes results takes them."""
    parser.add_argument(OVERWRITE_FLAG, action="store_true", help="replace the outputs of an earlier run")
    parser.add_argument("--no-progress", action="store_true",
                        help=f"no progress bars (as {NO_PROGRESS_ENV}=1; they show only on a terminal anyway)")


def refuse_existing(paths: Iterable[str | Path], overwrite: bool) -> None:
    """OutputExistsError naming the first of `paths` that exists, unless `overwrite`."""
    if overwrite:
        return
    for path in map(Path, paths):
        if path.exists():
            raise OutputExistsError(
                f"{path}: already exists (an earlier run's output); pass {OVERWRITE_FLAG} to replace it, "
                "or choose another --out"
            )
