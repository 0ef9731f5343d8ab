"""`ie-eval fit` of any stage config with a probe that records what each rank saw.

Run by `ddp_helpers.ddp_fit` (`test_ddp_reward_fit.py`, `test_ddp_sft_fit.py`) as
`python ddp_fit.py OUT FIT_ARGS...`, FIT_ARGS naming the stage's `--config`; under DDP Lightning
re-executes this script for every rank > 0 (it reads its rank from LOCAL_RANK). Each rank writes
OUT/rank{r}.json (sample ids of its train and val batches, the logged metrics, the world size, how far
the weights moved, the trainable parameters some backward left without a gradient) and OUT/rank{r}.pt (its final weights).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.tensor import DTensor

from ie_eval.commands.fit import build_cli


def sharded(module: torch.nn.Module) -> bool:
    return any(isinstance(p, DTensor) for p in module.parameters())


def whole_state(module: torch.nn.Module, parameters: bool = False) -> dict[str, torch.Tensor]:
    """Every rank's copy of the whole state dict (or the parameters), gathered from the shards under FSDP2
    (every rank must call it); what an FSDP-managed module's attributes hold between steps may be a stale
    unsharded copy, so the shards are read through `get_model_state_dict`, as checkpoints are."""
    if sharded(module):
        from torch.distributed.fsdp import FSDPModule

        for sub in module.modules():  # back to the shards the optimizer steps, off any left-over unsharded copy
            if isinstance(sub, FSDPModule):
                sub.reshard()
        state = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True))
    else:
        state = module.state_dict()
    names = {k for k, _ in module.named_parameters()} if parameters else state.keys()
    return {k: v.detach().cpu().clone() for k, v in state.items() if k in names}


class RecordRun(L.Callback):
    """Per-rank record of the batches a fit saw and of where it ended."""

    def __init__(self, out: Path) -> None:
        self.out, self.train_ids, self.val_ids, self.without_grad = out, [], [], set()

    def on_train_start(self, trainer, pl_module) -> None:
        self.initial = whole_state(pl_module, parameters=True)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.train_ids.append(list(batch["sample_ids"]))

    def on_after_backward(self, trainer, pl_module) -> None:
        # Trainable parameters the step's backward did not reach: DDP (find_unused_parameters off) fails on them.
        self.without_grad |= {k for k, v in pl_module.named_parameters() if v.requires_grad and v.grad is None}

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self.val_ids.append(list(batch["sample_ids"]))

    def on_train_end(self, trainer, pl_module) -> None:
        rank = trainer.global_rank
        weights = whole_state(pl_module)
        torch.save(weights, self.out / f"rank{rank}.pt")
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        moved = max((weights[k] - v).abs().max().item() for k, v in self.initial.items())
        record = {"world_size": trainer.world_size, "train_ids": self.train_ids, "val_ids": self.val_ids,
                  "metrics": metrics, "global_step": trainer.global_step, "moved": moved,
                  "without_grad": sorted(self.without_grad)}
        (self.out / f"rank{rank}.json").write_text(json.dumps(record))


class KillAt(L.Callback):
    """SIGKILL this rank when step `step` starts (every rank has one: the whole run dies at that step)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class AppendBatchIds(L.Callback):
    """Each train batch's sample ids appended to OUT/rank{r}.batches.jsonl as it starts (survives a SIGKILL)."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        with open(self.out / f"rank{trainer.global_rank}.batches.jsonl", "a") as file:
            file.write(json.dumps({"step": trainer.global_step, "ids": list(batch["sample_ids"])}) + "\n")


def main(out: str, *fit_args: str) -> None:
    """Env: CKPT_EVERY=N adds a ModelCheckpoint every N steps (OUT/steps/last.ckpt); KILL_AT_STEP=S kills
    every rank when step S starts; RESUME_FROM=PATH resumes the fit from that checkpoint."""
    cli = build_cli(list(fit_args), run=False, overwrite=True)
    cli.trainer.callbacks += [RecordRun(Path(out)), AppendBatchIds(Path(out))]
    if os.environ.get("CKPT_EVERY"):
        cli.trainer.callbacks.append(ModelCheckpoint(dirpath=Path(out) / "steps", save_last=True, save_top_k=-1,
                                                     every_n_train_steps=int(os.environ["CKPT_EVERY"])))
    if os.environ.get("KILL_AT_STEP"):
        cli.trainer.callbacks.append(KillAt(int(os.environ["KILL_AT_STEP"])))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=os.environ.get("RESUME_FROM"))


if __name__ == "__main__":
    main(*sys.argv[1:])
