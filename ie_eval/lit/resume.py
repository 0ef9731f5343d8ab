"""Exact resume from any step: what a Lightning checkpoint leaves out and a bit-identical continuation needs.

Lightning checkpoints hold weights, optimizer, schedulers, loop progress and the train loaders'
positions (`data.resumable`). They do not hold the random number generators: dropout masks (the
RE-Reward head), and anything else drawn from the global generators, would differ after a resume.
`ResumeState` saves every rank's generators (gathered, since rank 0 alone writes the file) and
restores each rank's own just before the first batch after the resume, so what ran in between
(checkpoint loading, a sanity check, loader start-up) does not shift them.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

RNG_KEY = "rng_states"


def rng_state() -> dict[str, Any]:
    """This process's generators (python, numpy, torch CPU and CUDA), as checkpoint-safe types."""
    kind, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "key": key.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], np.asarray(numpy["key"], dtype=np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gathered(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rank's `state`, in rank order (a collective: every rank calls it at the same checkpoint)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [state]
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states


def restart_train_loader(trainer: L.Trainer) -> None:
    """Hand a mid-epoch checkpoint's loader positions to the train loader if Lightning has not.

    Lightning loads them when it sets up the train data after restoring the checkpoint. But a
    module that asks for `trainer.estimated_stepping_batches` while configuring its optimizers
    (every ie-eval stage: the LR schedule's length) makes it set the data up before the restore,
    and the positions are then never loaded: the epoch restarts from its first batch. The loader's
    iterator (which has already prefetched a batch) is recreated after loading them.
    """
    fit_loop = trainer.fit_loop
    if fit_loop._combined_loader_states_to_load and fit_loop._combined_loader is not None and fit_loop.restarting:
        fit_loop._load_combined_loader_states()
        iter(fit_loop._data_fetcher)


class ResumeState(L.Callback):
    """Saves all ranks' random generators in every checkpoint and restores them on resume; makes sure
    the train loader continues a mid-epoch checkpoint's epoch where it stopped (`restart_train_loader`).

    A resume on a different number of ranks cannot continue the same streams: it warns and keeps
    the freshly seeded ones.
    """

    def __init__(self) -> None:
        self.pending: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[RNG_KEY] = gathered(rng_state())

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        states = checkpoint.get(RNG_KEY)
        if states is None:
            log.warning("checkpoint has no random generator states: the resumed run draws new dropout masks")
        elif len(states) != trainer.world_size:
            log.warning("checkpoint has the generators of %d ranks, this run has %d: they are not restored",
                        len(states), trainer.world_size)
        else:
            self.pending = states[trainer.global_rank]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        restart_train_loader(trainer)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.pending is not None:
            set_rng_state(self.pending)
            self.pending = None
