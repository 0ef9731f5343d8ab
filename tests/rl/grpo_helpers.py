"""Builders of the GRPO tests: the module on a saved policy, the prompt data, a CPU trainer."""

TINY_PIXELS = 4096


def grpo_module(policy_dir, reward_source, adapter=None, rewards=None, sampling_seed=None, **grpo):
    from ie_eval.rl.grpo_module import GRPOModule

    return GRPOModule(
        policy=str(policy_dir),
        adapter=adapter or {"kind": "full"},
        grpo={"group_size": 2, "beta": 0.04, **grpo},
        sampling={"temperature": 1.0, "max_new_tokens": 8, "seed": sampling_seed},
        eval_sampling={"temperature": 0.0, "max_new_tokens": 8},
        reward_source=reward_source,
        rewards=rewards or [{"name": "re_reward", "weight": 1.0}, {"name": "format", "weight": 0.2}],
        optim={"lr": 1e-3, "head_lr": 1e-3, "warmup_ratio": 0.0, "min_lr_ratio": 1.0},
        prompts={"max_pixels": TINY_PIXELS, "min_pixels": 1024, "max_length": 1024},
    )


def prompt_data(manifest, **overrides):
    from ie_eval.rl.prompt_data import PromptDataModule

    options = {"prompts_per_step": 2, "mos_ratio": 0.5, "eval_batch_size": 2, "val_prompts": 2, **overrides}
    return PromptDataModule(str(manifest), **options)


def trainer(root, max_steps, callbacks=(), val_check_interval=None, precision="32-true"):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    return L.Trainer(
        accelerator="cpu", precision=precision, max_steps=max_steps, max_epochs=1, default_root_dir=str(root), logger=CSVLogger(str(root)),
        callbacks=list(callbacks), enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        log_every_n_steps=1, val_check_interval=val_check_interval, limit_val_batches=1,
        enable_checkpointing=False,
    )
