"""Running ddp_grpo_run.py in its own process group and reading back what each rank wrote."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("ddp_grpo_run.py")


def run(root: Path, policy: Path, reward: Path, manifest: Path, mode: str = "", killed: bool = False,
        env: dict[str, str] | None = None) -> None:
    """ddp_grpo_run.py POLICY REWARD MANIFEST ROOT MODE; `env` sets its knobs (DEVICES, PROMPTS_PER_STEP, ...)."""
    root.mkdir(exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(SCRIPT.parent), **(env or {}))
    process = subprocess.Popen([sys.executable, str(SCRIPT), str(policy), str(reward), str(manifest), str(root), mode],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=root,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=400)
    finally:  # a rank left waiting on a dead peer's collective dies with its session
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    expected = -signal.SIGKILL if killed else 0
    assert process.returncode == expected, output[-4000:]


def entries(root: Path, rank: int) -> list[dict]:
    return [json.loads(line) for line in (root / f"rank{rank}.steps.jsonl").read_text().splitlines()]


def steps(root: Path, rank: int) -> list[dict]:
    """The prompts of every step `rank` started: {"step", "prompts"}."""
    return [entry for entry in entries(root, rank) if "step" in entry]


def step_metrics(root: Path, rank: int) -> list[dict]:
    """The logged (rank-synced) metrics of every step `rank` ended: {"ended", name: value}."""
    return [entry for entry in entries(root, rank) if "ended" in entry]
