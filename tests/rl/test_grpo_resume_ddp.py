"""A 2-process GRPO run (gloo DDP) killed by SIGKILL mid-epoch (a GRPO run is one epoch) and resumed from its
last step checkpoint: every rank trains the uninterrupted run's prompts, none twice, and ends on its
weights (the prompt stream's position, the rollout generators and the optimizer all come back)."""

from __future__ import annotations

import torch
from grpo_ddp_helpers import run, steps

STEPS, KILL = 4, 3  # checkpoints at steps 2 and 4: the kill as step 3 starts resumes from step 2


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
