"""Read back what an offline W&B run wrote: the records of its `run-<id>.wandb` file.

The file is a LevelDB-style log (wandb's own format): a 7-byte header (":W&B", magic, version), then
32 KiB blocks of chunks, each `crc32 (4) | length (2) | type (1) | data`, type 1 a whole record and
2/3/4 its first, middle and last pieces; each record is a `wandb_internal_pb2.Record` protobuf.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def run_records(run_file: Path) -> list:
    """Every Record in an offline run's .wandb file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", f"{run_file}: not a W&B run file"
    records, pieces, position = [], [], HEADER
    while position + HEADER <= len(data):
        room = BLOCK - position % BLOCK
        if room < HEADER:  # a block's tail too short for a chunk header is zero padding
            position += room
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + HEADER])
        if kind == 0:
            position += room
            continue
        if position + HEADER + length > len(data):  # a chunk still being written
            break
        pieces.append(data[position + HEADER : position + HEADER + length])
        position += HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(pieces))
            records.append(record)
            pieces = []
    return records


def finished_run_records(run_file: Path, timeout_s: float = 60.0) -> list:
    """The records of a finished run, once its `exit` record is on disk.

    `run.finish()` can return before wandb's service process has flushed the file's last block (seen on a
    loaded CI machine: the artifact, summary and exit records were missing), so wait for the exit record."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = run_records(run_file)
        kinds = [r.WhichOneof("record_type") for r in records]
        if "exit" in kinds:
            return records
        assert time.monotonic() < deadline, f"{run_file}: no exit record after {timeout_s:.0f} s; records {kinds}"
        time.sleep(0.2)


def logged_artifacts(wandb_dir: Path) -> list:
    """The artifact records of every finished offline run under `wandb_dir` (a folder holding `wandb/`)."""
    files = sorted(Path(wandb_dir).glob("wandb/offline-run-*/run-*.wandb"))
    assert files, f"{wandb_dir}: no offline W&B run"
    return [r.artifact for f in files for r in finished_run_records(f) if r.WhichOneof("record_type") == "artifact"]
