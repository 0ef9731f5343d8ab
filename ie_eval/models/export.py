"""Exports written whole or not at all: `atomic_export(dir, marker)` and the loaders' `check_finished_export`.

An export is written into a temporary sibling, `<dir>.tmp-<pid>`, and renamed to `<dir>` only once
complete, so a killed or failed save never leaves a directory that loads as a finished export, and
an earlier export at `<dir>` stays until the new one is whole. A directory holds an export's marker
file (its config JSON) only when it is finished, and loaders refuse a `.tmp-*` leftover by name.

What it leaves out: POSIX has no atomic swap of two directories, so replacing an earlier export is
two renames (the old one aside to `<dir>.old-<pid>`, the new one in); a kill between them leaves
the earlier export under that name. Leftovers of other processes are not deleted (one may still be
writing); a rerun from the same process id removes its own.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMPORARY_TAG = ".tmp-"
_TEMPORARY_NAME = re.compile(rf"(?P<finished>.+){re.escape(TEMPORARY_TAG)}\d+")


def temporary_sibling(directory: Path) -> Path:
    """Where this process writes the export bound for `directory`: `<dir>.tmp-<pid>`."""
    return directory.with_name(f"{directory.name}{TEMPORARY_TAG}{os.getpid()}")


def check_finished_export(directory: str | Path, marker: str, kind: str) -> Path:
    """`directory` if it is a finished export of `kind` (holds `marker`), else FileNotFoundError saying why."""
    directory = Path(directory)
    temporary = _TEMPORARY_NAME.fullmatch(directory.name)
    if temporary:
        raise FileNotFoundError(
            f"{directory}: an unfinished {kind} export (the temporary directory of a save that was interrupted); "
            f"the finished export is renamed to {directory.with_name(temporary['finished'])}: load that, or export again"
        )
    if not (directory / marker).is_file():
        raise FileNotFoundError(f"{directory}: not a saved {kind} (no {marker})")
    return directory


@contextmanager
def atomic_export(directory: str | Path, marker: str) -> Iterator[Path]:
    """Yield the temporary directory to write the export into; on a clean exit it replaces `directory`.

    marker: the file a finished export holds (its config); write it last. On an exception the
    temporary directory is removed and `directory` is left as it was. A `directory` that exists,
    is not empty and has no `marker` is not an earlier export and is refused (FileExistsError),
    as replacing it would delete whatever it holds.
    """
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()) and not (directory / marker).is_file():
        raise FileExistsError(f"{directory}: exists and is not an earlier export (no {marker}); refusing to replace it")
    partial = temporary_sibling(directory)
    shutil.rmtree(partial, ignore_errors=True)  # this process id's own leftover, from a killed earlier run
    partial.mkdir(parents=True)
    try:
        yield partial
        if not (partial / marker).is_file():
            raise RuntimeError(f"{partial}: the export wrote no {marker}, so it would not load; not renaming it")
    except BaseException:  # KeyboardInterrupt too: never leave a half export behind
        shutil.rmtree(partial, ignore_errors=True)
        raise
    replace_directory(partial, directory)


def replace_directory(new: Path, target: Path) -> None:
    """Rename `new` to `target`, replacing an earlier `target` whole (its files do not survive into the new one)."""
    if not target.exists():
        os.rename(new, target)
        return
    old = target.with_name(f"{target.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(target, old)
    os.rename(new, target)
    shutil.rmtree(old)
