"""A 2-process RE-Reward fit (gloo DDP) killed by SIGKILL mid-epoch and resumed from its last step checkpoint
ends on the uninterrupted run's weights, and the resumed epoch trains every sample once: the loaders continue
from the checkpoint's position, each rank's random generators (head dropout) come back, and the loss queues
and optimizer are in the checkpoint."""

from __future__ import annotations

from pathlib import Path

from ddp_helpers import batch_log, ddp_fit, max_difference

STEPS, EVERY, KILL = 6, 2, 5  # the last checkpoint before the kill is step 4's: mid-epoch


def fit(out: Path, manifest: Path, **env: str) -> list[dict]:
    return ddp_fit(
        out, "configs/rm/tiny.yaml", 2,
        "--data.init_args.manifest", str(manifest),
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", str(STEPS),
        "--data.init_args.batch_size", "4", "--data.init_args.eval_batch_size", "8",
        env={"CKPT_EVERY": str(EVERY), **env}, killed="KILL_AT_STEP" in env, timeout=300,
    )


def trained_batches(out: Path, rank: int) -> list[list[str]]:
    """Per step, the batch the step's optimizer update used (a step rerun after the resume replaces the
    killed run's, which the kill lost before any checkpoint held it)."""
    by_step = {entry["step"]: entry["ids"] for entry in batch_log(out, rank)}
    return [by_step[step] for step in sorted(by_step)]


def test_a_killed_two_process_fit_resumes_mid_epoch_onto_the_uninterrupted_weights(synth_manifest, tmp_path):
    kill_at = KILL
    straight = fit(tmp_path / "straight", synth_manifest)
    killed = fit(tmp_path / "killed", synth_manifest, KILL_AT_STEP=str(kill_at))
    assert [entry["step"] for entry in killed[0]] == list(range(kill_at + 1))  # died as step `kill_at` started
    checkpoint = tmp_path / "killed" / "steps" / "last.ckpt"
    resumed = fit(tmp_path / "killed", synth_manifest, RESUME_FROM=str(checkpoint))

    for rank in (0, 1):
        log = batch_log(tmp_path / "killed", rank)
        after_resume = [entry["step"] for entry in log[kill_at + 1:]]
        assert after_resume == list(range(EVERY * (kill_at // EVERY), STEPS))  # from the checkpoint's step on
        trained = trained_batches(tmp_path / "killed", rank)
        assert trained == trained_batches(tmp_path / "straight", rank)
        epoch = sum(trained, [])
        assert len(epoch) == len(set(epoch)) == STEPS * 4  # no sample twice in the resumed epoch
        assert resumed[rank]["global_step"] == straight[rank]["global_step"] == STEPS
        assert max_difference(resumed[rank]["weights"], straight[rank]["weights"], skip="\0") == 0.0
    assert straight[0]["moved"] > 1e-3
