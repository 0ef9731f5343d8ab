"""Every reward failure class in a short GRPO run against a real uvicorn server: policy outputs the
server refuses are penalized and training goes on; the rest stop with a checkpoint, the cause and
the resume command."""

from __future__ import annotations

import math

import pytest
import torch
from fastapi import FastAPI
from grpo_helpers import TINY_PIXELS, grpo_module, prompt_data, trainer

from ie_eval.rl.scorers import RewardUnavailableError
from ie_eval.serve.runner import BackgroundServer


def served(tiny_reward_dir, score_hook=None, **config):
    from ie_eval.models.reward_model import RewardModel
    from ie_eval.serve.app import create_app
    from ie_eval.serve.config import ServeConfig
    from ie_eval.serve.scoring import RewardScoring

    scoring = RewardScoring(RewardModel.from_pretrained(tiny_reward_dir), batch_size=8, max_pixels=TINY_PIXELS,
                            max_length=config.pop("max_length", None))
    if score_hook is not None:
        real = scoring.score_records
        scoring.score_records = lambda records: score_hook(real(records))
    return BackgroundServer(create_app(scoring, ServeConfig(max_pixels=TINY_PIXELS, **config))).start()


def source(server, **extra):
    return {"url": server.url, "attempts": 2, "backoff_s": 0.05, "deadline_s": 20.0, "timeout_s": 10.0, **extra}


def run_steps(tmp_path, synth_manifest, tiny_critic_dir, reward_source, steps=1):
    torch.manual_seed(0)
    module = grpo_module(tiny_critic_dir, reward_source)
    run = trainer(tmp_path, max_steps=steps)
    run.fit(module, datamodule=prompt_data(synth_manifest))
    return module, run


def test_completions_the_server_refuses_as_too_long_are_penalized_not_fatal(tmp_path, synth_manifest, tiny_critic_dir, tiny_reward_dir):
    server = served(tiny_reward_dir, max_critique_chars=3)
    try:
        module, run = run_steps(tmp_path, synth_manifest, tiny_critic_dir, source(server, refused_penalty=-4.0))
    finally:
        server.stop()
    assert run.global_step == 1 and module.rewards.refused_items() > 0


def test_a_prompt_over_the_reward_models_max_length_is_penalized_not_fatal(tmp_path, synth_manifest, tiny_critic_dir, tiny_reward_dir):
    server = served(tiny_reward_dir, max_length=40)
    try:
        module, run = run_steps(tmp_path, synth_manifest, tiny_critic_dir, source(server))
    finally:
        server.stop()
    assert run.global_step == 1 and module.rewards.refused_items() > 0


def nan_scores(results):
    from dataclasses import replace

    return [replace(r, accuracy=math.nan, reward=math.nan) for r in results]


def wrong_count_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/score")
    async def score(body: dict) -> dict:
        return {"results": [{"logicality": 0.0, "accuracy": 0.0, "usefulness": 0.0, "reward": 0.0}], "model": "x"}

    return app


@pytest.mark.parametrize("failure", ["non_finite", "wrong_count", "refused_body"])
def test_bad_answers_stop_the_run_with_a_checkpoint_the_cause_and_the_resume_command(
    failure, tmp_path, synth_manifest, tiny_critic_dir, tiny_reward_dir,
):
    if failure == "non_finite":
        server, cause = served(tiny_reward_dir, score_hook=nan_scores), "non_finite"
    elif failure == "wrong_count":
        server, cause = BackgroundServer(wrong_count_app()).start(), "wrong_count"
    else:  # every request over the body limit: a refusal that names no single item
        server, cause = served(tiny_reward_dir, max_body_bytes=100), "refused"
    try:
        with pytest.raises(RewardUnavailableError, match=rf"{cause}.*nothing was trained.*--ckpt-path .*reward-failure\.ckpt") as caught:
            run_steps(tmp_path, synth_manifest, tiny_critic_dir, source(server))
    finally:
        server.stop()
    assert caught.value.cause == cause
    saved = torch.load(tmp_path / "checkpoints" / "reward-failure.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 0


def test_one_ranks_reward_failure_stops_every_rank_of_a_two_process_run(tmp_path, synth_manifest, tiny_critic_dir, tiny_reward_dir):
    """Real DDP on gloo: rank 1's server answers with the wrong count, rank 0's is fine. Both ranks
    stop at the same step (no hang in the next collective), one checkpoint is written, and each
    rank names the cause it saw."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    good, bad = served(tiny_reward_dir), BackgroundServer(wrong_count_app()).start()
    script = Path(__file__).with_name("ddp_reward_failure.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(script.parent))
    try:
        done = subprocess.run(
            [sys.executable, str(script), str(tiny_critic_dir), str(synth_manifest), str(tmp_path), good.url, bad.url],
            capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
        )
    finally:
        good.stop()
        bad.stop()
    log = done.stdout + done.stderr
    assert done.returncode != 0, log
    assert "wrong_count" in log and "another rank's rewards failed" in log, log[-4000:]
    assert log.count("--ckpt-path") >= 2, log[-4000:]
    saved = torch.load(tmp_path / "checkpoints" / "reward-failure.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 0
