"""Running a stage's `ie-eval fit` on several CPU processes (gloo DDP) and reading back what each rank saw."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("ddp_fit.py")


def ddp_fit(out: Path, config: str, processes: int, *fit_args: str, timeout: int = 240,
            overlay: str = "configs/strategy/ddp_cpu.yaml", env: dict[str, str] | None = None,
            killed: bool = False) -> list[dict]:
    """Fit `config` (repo-relative) on `processes` ranks (the strategy `overlay` when > 1: DDP over gloo by
    default); each rank's record and weights. `env` reaches ddp_fit.py (CKPT_EVERY, KILL_AT_STEP,
    RESUME_FROM); `killed`: the run is expected to die by SIGKILL (nothing but its batch logs is read back)."""
    out.mkdir(exist_ok=bool(env and env.get("RESUME_FROM")))
    args = ["--config", str(ROOT / config)]
    if processes > 1:
        args += ["--config", str(ROOT / overlay), "--trainer.devices", str(processes)]
    args += [
        "--trainer.default_root_dir", str(out / "run"),
        "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(out / "run"),
        *fit_args,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(SCRIPT.parent), **(env or {}))
    process = subprocess.Popen([sys.executable, str(SCRIPT), str(out), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env, cwd=out, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:  # a rank left waiting on a dead peer's collective dies with its session
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    if killed:
        assert process.returncode == -signal.SIGKILL, output[-4000:]
        return [batch_log(out, rank) for rank in range(processes)]
    assert process.returncode == 0, output[-4000:]
    records = []
    for rank in range(processes):
        record = json.loads((out / f"rank{rank}.json").read_text())
        record["weights"] = torch.load(out / f"rank{rank}.pt", map_location="cpu", weights_only=True)
        records.append(record)
    return records


def batch_log(out: Path, rank: int) -> list[dict]:
    """What ddp_fit.py's AppendBatchIds wrote for `rank`: one {"step", "ids"} per train batch started."""
    return [json.loads(line) for line in (out / f"rank{rank}.batches.jsonl").read_text().splitlines()]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], skip: str = "loss_fn.") -> float:
    """Largest absolute difference between two state dicts' entries, those named from `skip` left out."""
    a = {k: v for k, v in a.items() if not k.startswith(skip)}
    b = {k: v for k, v in b.items() if not k.startswith(skip)}
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def assert_disjoint_shards(one: dict, rank0: dict, rank1: dict, steps: int, per_rank: int) -> None:
    """Each train step's two rank batches are disjoint, `per_rank` each, and together the one-process batch;
    the two validation shards are disjoint, of equal length, and together the whole one-process val set."""
    assert rank0["world_size"] == rank1["world_size"] == 2 and one["world_size"] == 1
    assert len(rank0["train_ids"]) == len(rank1["train_ids"]) == len(one["train_ids"]) == steps
    for whole, first, second in zip(one["train_ids"], rank0["train_ids"], rank1["train_ids"], strict=True):
        assert len(first) == len(second) == per_rank
        assert not set(first) & set(second)
        assert sorted(first + second) == sorted(whole)
    val0, val1 = sum(rank0["val_ids"], []), sum(rank1["val_ids"], [])
    assert len(val0) == len(val1) > 0 and not set(val0) & set(val1)
    assert sorted(val0 + val1) == sorted(sum(one["val_ids"], []))
