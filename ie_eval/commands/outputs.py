"""What the tool commands share about their outputs: refuse to write over an earlier run's, resume an
interrupted one, and the flags.

A rerun into the same `--out` would silently replace results someone may still need (a table in a
paper draft, critiques being annotated), so it stops with the path and the flag that allows it.
Training runs get the same refusal from `ie-eval fit` (ie_eval/commands/fit.py).

Rows are appended to `<out>.partial` (JSONL, flushed) as their batches finish, and the output
proper is written from all of them at the end, after which the partial file goes. So a finished
run is the output itself (refused as above), and an interrupted one is the partial file: a rerun
with the same arguments skips the rows it holds (`PartialRows`), while `--overwrite` starts over.
Its first line records the arguments that shape the rows, so a rerun with other ones (another
checkpoint, scorer or manifest) is refused rather than mixed in.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from ie_eval.progress import NO_PROGRESS_ENV

log = logging.getLogger(__name__)

OVERWRITE_FLAG = "--overwrite"
PARTIAL_SUFFIX = ".partial"
RUN_KEY = "partial_run"  # the partial file's first line: {RUN_KEY: the arguments that shape its rows}


class OutputExistsError(SystemExit):
    """An earlier run's output is where this run would write; the message names it and the way on.
    A SystemExit, so the command ends with the message (exit status 1), not a traceback."""


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    """`--overwrite` and `--no-progress`, as every command that writes results takes them."""
    parser.add_argument(OVERWRITE_FLAG, action="store_true", help="replace the outputs of an earlier run; also start over instead of resuming an interrupted one")
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


def partial_path(out: str | Path) -> Path:
    """Where the rows of a run bound for `out` are appended until it finishes: `<out>.partial`."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def read_complete_lines(path: Path) -> tuple[list[dict], int]:
    """(rows, bytes they span) of a JSONL file. A last line without its newline is what a kill mid-write
    leaves: it is dropped with a warning. An unreadable line before it is damage, not a kill: ValueError."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # 0 when there is no complete line
    if end < len(data):
        log.warning("%s: dropped a last line cut short (%d bytes), as an interrupted run leaves it; "
                    "its rows are computed again", path, len(data) - end)
    rows = []
    for number, line in enumerate(data[:end].decode("utf-8").splitlines(), start=1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not a JSON row ({error}); remove the file or pass {OVERWRITE_FLAG}") from error
    return rows, end


class PartialRows:
    """The rows of a run in progress, `done` (key -> row), appended to `<out>.partial` as they come.

    run: the arguments that shape the rows (JSON-ready); a partial file written under other ones is
    refused. key: the row field that names a row (its record's id). overwrite: drop a partial file
    instead of resuming it. Use as a context manager; `remove()` once the output proper is written.
    """

    def __init__(self, out: str | Path, run: Mapping, key: str, overwrite: bool) -> None:
        self.path, self.key, self.run = partial_path(out), key, json.loads(json.dumps(dict(run)))
        self.done: dict[str, dict] = {}
        if overwrite or not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = self.path.open("w", encoding="utf-8")
            self.append([{RUN_KEY: self.run}])
            return
        rows, end = read_complete_lines(self.path)
        if not rows or rows[0].get(RUN_KEY) != self.run:
            earlier = rows[0].get(RUN_KEY) if rows else None
            raise OutputExistsError(
                f"{self.path}: an interrupted run with other arguments ({earlier}, now {self.run}); "
                f"pass {OVERWRITE_FLAG} to start over, or choose another --out"
            )
        self.done = {row[key]: row for row in rows[1:]}
        os.truncate(self.path, end)  # appends must not continue a line cut short
        self.handle = self.path.open("a", encoding="utf-8")
        log.info("%s: resuming, %d rows already done", self.path, len(self.done))

    def append(self, rows: Iterable[dict]) -> None:
        """Write `rows` and flush them to disk, so a kill after this loses none of them."""
        for row in rows:
            self.handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            if self.key in row:
                self.done[row[self.key]] = row
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def remove(self) -> None:
        self.handle.close()
        self.path.unlink()

    def __enter__(self) -> PartialRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def write_rows_atomically(rows: Iterable[dict], path: Path) -> None:
    """`rows` as JSONL at `path`, which appears only once complete (written beside it, then renamed)."""
    partial = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with partial.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(partial, path)
