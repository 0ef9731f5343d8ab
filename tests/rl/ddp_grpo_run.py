"""A GRPO run (DDP over gloo when DEVICES > 1) with a checkpoint every 2 steps, optionally SIGKILLed or resumed.

Run as `python ddp_grpo_run.py POLICY REWARD MANIFEST ROOT [KILL_AT|resume]` by test_grpo_resume_ddp.py and
test_grpo_ddp_matches.py; Lightning re-executes this script for the other ranks. Each rank appends the prompts
of every step it starts, and the synced metrics of every step it ends, to ROOT/rank{r}.steps.jsonl and, when
the fit ends, writes its policy weights to ROOT/rank{r}.pt. Environment: DEVICES (2), PROMPTS_PER_STEP (2 per
rank), SAMPLING_SEED (unset: torch's generator), AGGREGATION (token), STEPS (4).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import lightning as L
import torch
from grpo_helpers import grpo_module, prompt_data
from lightning.pytorch.callbacks import ModelCheckpoint

from ie_eval.lit.resume import ResumeState

EVERY = 2
LOGGED = ("train/loss", "train/reward_mean", "train/kl", "train/aux_huber", "train/response_length_max")


class RecordAndKill(L.Callback):
    def __init__(self, root: Path, kill_at: int | None) -> None:
        self.root, self.kill_at = root, kill_at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        self.write(trainer, {"step": trainer.global_step, "prompts": [r.pair_id for r in batch]})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        metrics = trainer.callback_metrics
        self.write(trainer, {"ended": trainer.global_step, **{k: float(metrics[k]) for k in LOGGED if k in metrics}})

    def write(self, trainer, entry: dict) -> None:
        with open(self.root / f"rank{trainer.global_rank}.steps.jsonl", "a") as file:
            file.write(json.dumps(entry) + "\n")

    def on_train_end(self, trainer, pl_module) -> None:
        weights = {k: v.detach().cpu() for k, v in pl_module.model.state_dict().items()}
        torch.save(weights, self.root / f"rank{trainer.global_rank}.pt")


def main(policy: str, reward: str, manifest: str, root: str, mode: str = "") -> None:
    root_path = Path(root)
    L.seed_everything(0)
    seed = os.environ.get("SAMPLING_SEED")
    module = grpo_module(policy, {"ckpt": reward}, aggregation=os.environ.get("AGGREGATION", "token"),
                         sampling_seed=None if seed is None else int(seed))
    devices = int(os.environ.get("DEVICES", "2"))
    checkpoints = ModelCheckpoint(dirpath=root_path / "checkpoints", every_n_train_steps=EVERY, save_last=True,
                                  save_top_k=-1)
    kill_at = int(mode) if mode.isdigit() else None
    trainer = L.Trainer(
        accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto", use_distributed_sampler=False,
        max_steps=int(os.environ.get("STEPS", "4")), max_epochs=1,
        default_root_dir=root, logger=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0,
        callbacks=[RecordAndKill(root_path, kill_at), ResumeState(), checkpoints],
    )
    resume = root_path / "checkpoints" / "last.ckpt" if mode == "resume" else None
    data = prompt_data(manifest, prompts_per_step=int(os.environ.get("PROMPTS_PER_STEP", "2")))
    trainer.fit(module, datamodule=data, ckpt_path=resume)


if __name__ == "__main__":
    main(*sys.argv[1:6])
