"""The GRPO loop on tiny real models: one readable step, its logs, its reference, and reward failures."""

import csv

import pytest
import torch
from grpo_helpers import grpo_module, prompt_data, trainer

from ie_eval.rl.scorers import RewardUnavailableError

STEP_KEYS = (
    "train/reward_mean", "train/reward_std", "train/reward_re_reward_mean", "train/reward_re_reward_std",
    "train/reward_format_mean", "train/response_length", "train/kl", "train/clip_fraction", "train/entropy",
    "train/aux_huber", "train/aux_huber_strong", "train/sampling_logp_gap", "time/generate_s", "time/score_s",
    "time/update_s",
)


def logged_rows(root):
    path = next(root.rglob("metrics.csv"))
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_fit_logs_every_step_component_and_validation(tmp_path, synth_manifest, tiny_critic_dir, tiny_reward_dir):
    torch.manual_seed(0)
    module = grpo_module(tiny_critic_dir, {"ckpt": str(tiny_reward_dir)}, log_sampling_gap=True)
    run = trainer(tmp_path, max_steps=2, val_check_interval=2)
    run.fit(module, datamodule=prompt_data(synth_manifest))
    assert run.global_step == 2  # one optimizer step per rollout batch (ppo_epochs = 1)
    rows = logged_rows(tmp_path)
    steps = [r for r in rows if r.get("train/reward_mean")]
    assert len(steps) == 2
    for key in STEP_KEYS:
        assert all(r[key] != "" for r in steps), key
    assert float(steps[0]["train/kl"]) == pytest.approx(0.0, abs=1e-6)  # policy == reference before any update
    val = [r for r in rows if r.get("val/reward_mean")]
    assert val and val[-1]["val/head_mean_srcc"] != ""
    # generate's own log-probs of the sampled tokens and the trainer's recomputation agree
    assert all(float(r["train/sampling_logp_gap"]) < 1e-3 for r in steps)


def test_micro_batched_log_probs_and_ratio_weighted_kl_train_the_same_step(tmp_path, synth_manifest, tiny_critic_dir,
                                                                             tiny_reward_dir):
    """`logprob_micro_batch` and `logprob_chunk_tokens` change only how the log-probs are computed (in
    micro-batches of rows; through the LM head in chunks of tokens); with ppo_epochs 1 the ratio is
    1, so `kl_ratio_weighted` leaves the first step's loss unchanged too."""
    losses = []
    for options in ({}, {"logprob_micro_batch": 1, "logprob_chunk_tokens": 3, "kl_ratio_weighted": True}):
        torch.manual_seed(0)
        module = grpo_module(tiny_critic_dir, {"ckpt": str(tiny_reward_dir)}, **options)
        run = trainer(tmp_path / str(len(losses)), max_steps=1)
        run.fit(module, datamodule=prompt_data(synth_manifest))
        losses.append(float(next(r for r in logged_rows(tmp_path / str(len(losses))) if r.get("train/loss"))["train/loss"]))
    assert losses[0] == pytest.approx(losses[1], rel=1e-4, abs=1e-6)


def test_lora_reference_is_the_policy_with_its_adapter_off(tmp_path, synth_manifest, tiny_critic_dir, tiny_reward_dir):
    from ie_eval.rl.rollout import completion_logprobs

    torch.manual_seed(0)
    module = grpo_module(tiny_critic_dir, {"ckpt": str(tiny_reward_dir)},
                         adapter={"kind": "lora", "r": 4, "alpha": 8, "dropout": 0.0})
    assert module.model.is_peft and module.reference.shares_backbone
    data = prompt_data(synth_manifest)
    data.setup("fit")
    prompts = module.collate(data.splits["train"][:2])
    rollouts = module.sample(prompts)
    args = (prompts, rollouts.completion_ids, rollouts.completion_mask, 2)

    def reference_logp():
        with torch.no_grad(), module.reference.active() as reference:
            return completion_logprobs(reference, *args)

    start = reference_logp()
    with torch.no_grad():
        assert torch.allclose(completion_logprobs(module.model, *args), start, atol=1e-5)  # LoRA B = 0 at start
    run = trainer(tmp_path, max_steps=2)
    run.fit(module, datamodule=data)
    with torch.no_grad():
        moved = completion_logprobs(module.model, *args)
    assert not torch.allclose(moved, start, atol=1e-4)  # the policy learned ...
    assert torch.allclose(reference_logp(), start, atol=1e-6)  # ... and the reference did not


@pytest.mark.parametrize("overlap", [None, 1], ids=["serial", "overlapped_scoring"])
def test_dead_reward_server_stops_with_a_checkpoint_and_trains_on_nothing(
    tmp_path, synth_manifest, tiny_critic_dir, tiny_reward_dir, overlap
):
    import lightning as L

    from ie_eval.models.reward_model import RewardModel
    from ie_eval.serve.app import create_app
    from ie_eval.serve.config import ServeConfig
    from ie_eval.serve.runner import BackgroundServer
    from ie_eval.serve.scoring import RewardScoring

    scoring = RewardScoring(RewardModel.from_pretrained(tiny_reward_dir), batch_size=8, max_pixels=4096)
    server = BackgroundServer(create_app(scoring, ServeConfig(max_pixels=4096))).start()

    class KillServerAfterFirstStep(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 1 and server.thread.is_alive():
                server.stop()

    torch.manual_seed(0)
    source = {"url": server.url, "attempts": 2, "backoff_s": 0.05, "deadline_s": 20.0, "timeout_s": 5.0}
    module = grpo_module(tiny_critic_dir, source, overlap_scoring_prompts=overlap)
    run = trainer(tmp_path, max_steps=3, callbacks=[KillServerAfterFirstStep()])
    with pytest.raises(RewardUnavailableError, match="unreachable.*nothing was trained on this batch.*--ckpt-path .*reward-failure.ckpt"):
        run.fit(module, datamodule=prompt_data(synth_manifest))
    assert run.global_step == 1  # the step whose rewards never came made no update
    checkpoint = tmp_path / "checkpoints" / "reward-failure.ckpt"
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 1

    resumed = grpo_module(tiny_critic_dir, {"ckpt": str(tiny_reward_dir)})  # the server is back (in-process here)
    rerun = trainer(tmp_path / "resume", max_steps=2)
    rerun.fit(resumed, datamodule=prompt_data(synth_manifest), ckpt_path=str(checkpoint))
    assert rerun.global_step == 2  # continued from step 1, not from scratch


def test_export_is_a_self_contained_critic(tmp_path, synth_manifest, tiny_critic_dir, tiny_reward_dir):
    from ie_eval.models.critic import CriticModel

    torch.manual_seed(0)
    module = grpo_module(tiny_critic_dir, {"ckpt": str(tiny_reward_dir)},
                         adapter={"kind": "lora", "r": 4, "alpha": 8, "dropout": 0.0})
    trainer(tmp_path, max_steps=1).fit(module, datamodule=prompt_data(synth_manifest))
    exported = CriticModel.from_pretrained(module.export_pretrained(tmp_path / "export"))
    data = prompt_data(synth_manifest)
    data.setup("fit")
    prompts = module.collate(data.splits["val"][:2])
    module.model.eval()
    with torch.no_grad():
        assert torch.allclose(exported(prompts), module.model(prompts), atol=1e-5)
        assert exported.generate_texts(prompts, 8) == module.model.generate_texts(prompts, 8)


def test_a_bf16_true_trainer_trains_and_validates_on_record_batches(tmp_path, synth_manifest, tiny_critic_dir,
                                                                  tiny_reward_dir):
    """bf16-true casts each batch's tensors by rebuilding its lists and dataclasses: frozen records broke it."""
    torch.manual_seed(0)
    module = grpo_module(tiny_critic_dir, {"ckpt": str(tiny_reward_dir)}, rewards=[{"name": "format", "weight": 1.0}])
    run = trainer(tmp_path, max_steps=1, val_check_interval=1, precision="bf16-true")
    run.fit(module, datamodule=prompt_data(synth_manifest))
    assert run.global_step == 1
    assert next(module.model.backbone.parameters()).dtype == torch.bfloat16
    assert "val/reward_mean" in run.callback_metrics


def test_rollouts_never_contain_multimodal_placeholders(synth_manifest, tiny_critic_dir, tiny_reward_dir):
    from ie_eval.rl.rollout.base import multimodal_token_ids

    module = grpo_module(tiny_critic_dir, {"ckpt": str(tiny_reward_dir)})
    banned = multimodal_token_ids(module.model.processor)
    tokenizer = module.model.processor.tokenizer
    assert tokenizer.convert_tokens_to_ids(module.model.processor.image_token) in banned and len(banned) >= 3
    data = prompt_data(synth_manifest)
    data.setup("fit")
    prompts = module.collate(data.splits["train"][:2])
    head = module.model.backbone.get_output_embeddings()
    with torch.no_grad():  # make the placeholders the most likely next tokens
        head.weight[banned] = head.weight[banned] + 100.0 * head.weight.abs().max()
    rollouts = module.sample(prompts)
    assert not torch.isin(rollouts.completion_ids[rollouts.completion_mask.bool()], torch.tensor(banned)).any()


def test_moving_the_module_moves_the_frozen_reference(tiny_critic_dir, tiny_reward_dir):
    module = grpo_module(tiny_critic_dir, {"ckpt": str(tiny_reward_dir)})
    assert not module.reference.shares_backbone  # full fine-tuning: a frozen copy outside the module tree
    module.to(torch.float64)  # what Lightning's device / precision moves go through (`_apply`)
    with module.reference.active() as reference:
        assert next(reference.parameters()).dtype == torch.float64
    assert next(module.model.parameters()).dtype == torch.float64


def test_zero_std_groups_are_logged_and_filtered_and_a_step_without_signal_makes_no_update(
    tmp_path, synth_manifest, tiny_critic_dir, tiny_reward_dir
):
    """8 new tokens never finish a critique, so the format reward is 0 for every completion: every
    group has zero spread, the filter leaves nothing, and the weights must not move."""
    torch.manual_seed(0)
    module = grpo_module(tiny_critic_dir, {"ckpt": str(tiny_reward_dir)}, rewards=[{"name": "format", "weight": 1.0}],
                         filter_zero_std_groups=True, log_zero_std_groups=True)
    before = {k: v.detach().clone() for k, v in module.model.state_dict().items()}
    run = trainer(tmp_path, max_steps=1)
    run.fit(module, datamodule=prompt_data(synth_manifest))
    step = next(r for r in logged_rows(tmp_path) if r.get("train/reward_mean"))
    assert float(step["train/frac_reward_zero_std"]) == 1.0
    assert float(step["train/loss_completion_fraction"]) == 0.0 and float(step["train/skipped_update"]) == 1.0
    assert all(torch.equal(before[k], v) for k, v in module.model.state_dict().items())


def test_truncated_completions_can_be_left_out_of_the_loss(tmp_path, synth_manifest, tiny_critic_dir, tiny_reward_dir):
    torch.manual_seed(0)
    module = grpo_module(tiny_critic_dir, {"ckpt": str(tiny_reward_dir)}, mask_truncated_completions=True)
    run = trainer(tmp_path, max_steps=1)
    run.fit(module, datamodule=prompt_data(synth_manifest))
    step = next(r for r in logged_rows(tmp_path) if r.get("train/reward_mean"))
    kept = float(step["train/loss_completion_fraction"])
    assert 0.0 <= kept < 1.0  # 8 new tokens cut most critiques short
    assert float(step["train/skipped_update"]) == float(kept == 0.0)
    assert "train/frac_reward_zero_std" not in step or step["train/frac_reward_zero_std"] == ""  # its flag is off
