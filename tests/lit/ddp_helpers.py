"""Running a stage's `ie-eval fit` on several CPU processes (gloo DDP) and reading back what each rank saw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("ddp_fit.py")


def ddp_fit(out: Path, config: str, processes: int, *fit_args: str, timeout: int = 240) -> list[dict]:
    """Fit `config` (repo-relative) on `processes` ranks (DDP over gloo when > 1); each rank's record and weights."""
    out.mkdir()
    args = ["--config", str(ROOT / config)]
    if processes > 1:
        args += ["--config", str(ROOT / "configs/strategy/ddp_cpu.yaml"), "--trainer.devices", str(processes)]
    args += [
        "--trainer.default_root_dir", str(out / "run"),
        "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(out / "run"),
        *fit_args,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(SCRIPT.parent))
    done = subprocess.run([sys.executable, str(SCRIPT), str(out), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=out)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    records = []
    for rank in range(processes):
        record = json.loads((out / f"rank{rank}.json").read_text())
        record["weights"] = torch.load(out / f"rank{rank}.pt", map_location="cpu", weights_only=True)
        records.append(record)
    return records


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
