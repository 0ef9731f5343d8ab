"""`ie-eval fit` of any stage config with a probe that records what each rank saw.

Run by `ddp_helpers.ddp_fit` (`test_ddp_reward_fit.py`, `test_ddp_sft_fit.py`) as
`python ddp_fit.py OUT FIT_ARGS...`, FIT_ARGS naming the stage's `--config`; under DDP Lightning
re-executes this script for every rank > 0 (it reads its rank from LOCAL_RANK). Each rank writes
OUT/rank{r}.json (sample ids of its train and val batches, the logged metrics, the world size, how far
the weights moved, the trainable parameters some backward left without a gradient) and OUT/rank{r}.pt (its final weights).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import torch

from ie_eval.commands.fit import build_cli


class RecordRun(L.Callback):
    """Per-rank record of the batches a fit saw and of where it ended."""

    def __init__(self, out: Path) -> None:
        self.out, self.train_ids, self.val_ids, self.without_grad = out, [], [], set()

    def on_train_start(self, trainer, pl_module) -> None:
        self.initial = {k: v.detach().clone() for k, v in pl_module.named_parameters()}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.train_ids.append(list(batch["sample_ids"]))

    def on_after_backward(self, trainer, pl_module) -> None:
        # Trainable parameters the step's backward did not reach: DDP (find_unused_parameters off) fails on them.
        self.without_grad |= {k for k, v in pl_module.named_parameters() if v.requires_grad and v.grad is None}

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self.val_ids.append(list(batch["sample_ids"]))

    def on_train_end(self, trainer, pl_module) -> None:
        rank = trainer.global_rank
        torch.save({k: v.detach().cpu() for k, v in pl_module.state_dict().items()}, self.out / f"rank{rank}.pt")
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        moved = max((v.detach() - self.initial[k]).abs().max().item() for k, v in pl_module.named_parameters())
        record = {"world_size": trainer.world_size, "train_ids": self.train_ids, "val_ids": self.val_ids,
                  "metrics": metrics, "global_step": trainer.global_step, "moved": moved,
                  "without_grad": sorted(self.without_grad)}
        (self.out / f"rank{rank}.json").write_text(json.dumps(record))


def main(out: str, *fit_args: str) -> None:
    cli = build_cli(list(fit_args), run=False, overwrite=True)
    cli.trainer.callbacks.append(RecordRun(Path(out)))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)


if __name__ == "__main__":
    main(*sys.argv[1:])
