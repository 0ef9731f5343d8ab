"""Two-process GRPO run (DDP, gloo) whose rank 1 talks to a broken reward server.

Run by `test_reward_failures.py` as `python ddp_reward_failure.py POLICY MANIFEST ROOT GOOD_URL BAD_URL`;
Lightning re-executes this script for rank 1, which picks BAD_URL by its LOCAL_RANK.
"""

from __future__ import annotations

import os
import sys

import lightning as L
import torch
from grpo_helpers import grpo_module, prompt_data
from lightning.pytorch.loggers import CSVLogger


def main(policy: str, manifest: str, root: str, good_url: str, bad_url: str) -> None:
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    url = bad_url if rank == 1 else good_url
    torch.manual_seed(0)
    module = grpo_module(policy, {"url": url, "attempts": 1, "backoff_s": 0.05, "deadline_s": 20.0, "timeout_s": 10.0})
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", use_distributed_sampler=False, max_steps=2, max_epochs=1, default_root_dir=root,
        logger=CSVLogger(root), enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=1, enable_checkpointing=False,
    )
    trainer.fit(module, datamodule=prompt_data(manifest))


if __name__ == "__main__":
    main(*sys.argv[1:6])
