"""Two-process GRPO run (DDP, gloo) with a checkpoint every 2 steps, optionally SIGKILLed or resumed.

Run by `test_grpo_resume_ddp.py` as `python ddp_grpo_resume.py POLICY REWARD MANIFEST ROOT [KILL_AT|resume]`;
Lightning re-executes this script for rank 1. Each rank appends the prompts of every step it starts to
ROOT/rank{r}.steps.jsonl and, when the fit ends, writes its policy weights to ROOT/rank{r}.pt.
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

STEPS, EVERY = 4, 2


class RecordAndKill(L.Callback):
    def __init__(self, root: Path, kill_at: int | None) -> None:
        self.root, self.kill_at = root, kill_at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        with open(self.root / f"rank{trainer.global_rank}.steps.jsonl", "a") as file:
            file.write(json.dumps({"step": trainer.global_step, "prompts": [r.pair_id for r in batch]}) + "\n")

    def on_train_end(self, trainer, pl_module) -> None:
        weights = {k: v.detach().cpu() for k, v in pl_module.model.state_dict().items()}
        torch.save(weights, self.root / f"rank{trainer.global_rank}.pt")


def main(policy: str, reward: str, manifest: str, root: str, mode: str = "") -> None:
    root_path = Path(root)
    L.seed_everything(0)
    module = grpo_module(policy, {"ckpt": reward})
    checkpoints = ModelCheckpoint(dirpath=root_path / "checkpoints", every_n_train_steps=EVERY, save_last=True,
                                  save_top_k=-1)
    kill_at = int(mode) if mode.isdigit() else None
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", use_distributed_sampler=False, max_steps=STEPS, max_epochs=1,
        default_root_dir=root, logger=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0,
        callbacks=[RecordAndKill(root_path, kill_at), ResumeState(), checkpoints],
    )
    resume = root_path / "checkpoints" / "last.ckpt" if mode == "resume" else None
    trainer.fit(module, datamodule=prompt_data(manifest), ckpt_path=resume)


if __name__ == "__main__":
    main(*sys.argv[1:6])
