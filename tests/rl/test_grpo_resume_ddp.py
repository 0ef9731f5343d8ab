"""A 2-process GRPO run (gloo DDP) killed by SIGKILL mid-epoch (a GRPO run is one epoch) and resumed from its
last step checkpoint: every rank trains the uninterrupted run's prompts, none twice, and ends on its
weights (the prompt stream's position, the rollout generators and the optimizer all come back)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).with_name("ddp_grpo_resume.py")
STEPS, KILL = 4, 3  # checkpoints at steps 2 and 4: the kill as step 3 starts resumes from step 2


def run(root: Path, policy: Path, reward: Path, manifest: Path, mode: str = "", killed: bool = False) -> None:
    root.mkdir(exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(SCRIPT.parent))
    process = subprocess.Popen([sys.executable, str(SCRIPT), str(policy), str(reward), str(manifest), str(root), mode],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=root,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=400)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    expected = -signal.SIGKILL if killed else 0
    assert process.returncode == expected, output[-4000:]


def steps(root: Path, rank: int) -> list[dict]:
    return [json.loads(line) for line in (root / f"rank{rank}.steps.jsonl").read_text().splitlines()]


def test_a_killed_two_process_grpo_run_resumes_onto_the_uninterrupted_weights(
    tmp_path, synth_manifest, tiny_critic_dir, tiny_reward_dir
):
    run(tmp_path / "straight", tiny_critic_dir, tiny_reward_dir, synth_manifest)
    run(tmp_path / "killed", tiny_critic_dir, tiny_reward_dir, synth_manifest, str(KILL), killed=True)
    run(tmp_path / "killed", tiny_critic_dir, tiny_reward_dir, synth_manifest, "resume")
    for rank in (0, 1):
        log = steps(tmp_path / "killed", rank)
        assert [entry["step"] for entry in log] == [0, 1, 2, 2, 3]  # killed as step 3 started; resumed at 2
        trained = {entry["step"]: entry["prompts"] for entry in log}  # step 2 rerun: the kill lost it
        straight = {entry["step"]: entry["prompts"] for entry in steps(tmp_path / "straight", rank)}
        assert trained == straight
        prompts = sum(trained.values(), [])
        assert len(prompts) == len(set(prompts)) == STEPS * 2
        resumed = torch.load(tmp_path / "killed" / f"rank{rank}.pt", weights_only=True)
        reference = torch.load(tmp_path / "straight" / f"rank{rank}.pt", weights_only=True)
        assert resumed.keys() == reference.keys()
        for name in reference:
            assert torch.equal(resumed[name], reference[name]), name
    one, two = (steps(tmp_path / "straight", rank) for rank in (0, 1))
    for first, second in zip(one, two, strict=True):  # the ranks' prompts of a step are disjoint
        assert not set(first["prompts"]) & set(second["prompts"])
