"""Progress bars for the long loops outside Lightning (scoring, critiquing, image checks), drawn on stderr.

A bar is drawn only where someone watches it: when its console is a terminal, on the first process
of a distributed launch, and not when IE_EVAL_NO_PROGRESS=1. Logs, pipes, CI and tests therefore
get no control codes. `--no-progress` sets that variable for the whole process (and its
subprocesses), so loops deep in the data readers see it too. Training loops have Lightning's own
bar (RichProgressBar in the configs).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sized
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

NO_PROGRESS_ENV = "IE_EVAL_NO_PROGRESS"


def progress_disabled() -> bool:
    """True when IE_EVAL_NO_PROGRESS is set to anything but an empty string, 0, false or no."""
    return os.environ.get(NO_PROGRESS_ENV, "").strip().lower() not in ("", "0", "false", "no")


def disable_progress() -> None:
    """What `--no-progress` does: no bars in this process nor in the subprocesses it starts."""
    os.environ[NO_PROGRESS_ENV] = "1"


@contextmanager
def bars_off() -> Iterator[None]:
    """No bars drawn inside (a caller drawing one bar over many inner loops); the setting is restored after."""
    earlier = os.environ.get(NO_PROGRESS_ENV)
    os.environ[NO_PROGRESS_ENV] = "1"
    try:
        yield
    finally:
        if earlier is None:
            del os.environ[NO_PROGRESS_ENV]
        else:
            os.environ[NO_PROGRESS_ENV] = earlier


def track(iterable: Iterable[T], description: str, total: int | None = None,
          console: Console | None = None) -> Iterable[T]:
    """`iterable`'s items, unchanged and in order, with a bar of `description` advancing once per item.

    total: steps of the bar; default len(iterable) when it has one, else the bar counts without an end.
    console: where to draw (default: a console on stderr). When no bar is drawn (module docstring)
    `iterable` itself comes back, so the loop costs nothing extra.
    """
    console = console or Console(stderr=True)
    # Every rank of a DDP launch shares the terminal; one bar is enough.
    if progress_disabled() or not console.is_terminal or os.environ.get("LOCAL_RANK", "0") != "0":
        return iterable
    if total is None and isinstance(iterable, Sized):
        total = len(iterable)
    return _drawn(iterable, description, total, console)


def _drawn(iterable: Iterable[T], description: str, total: int | None, console: Console) -> Iterator[T]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    # The bar stays on screen when done (with its count and time), like a log line.
    with Progress(*columns, console=console) as progress:
        yield from progress.track(iterable, total=total, description=description)
