"""Train loaders that resume mid-epoch where a killed run stopped (Lightning's stateful-loader protocol).

Lightning saves `state_dict()` of every train loader that has one in each checkpoint and, when a
fit restarts inside an epoch, hands it back through `load_state_dict()` before iterating. Without
it a mid-epoch resume replays the epoch from its first batch (repeating what was trained on and
never reaching the end: a GRPO run is one epoch). The samplers here are deterministic in
(seed, epoch), so the position is all there is to save: how many of the epoch's batches the
training loop consumed. That is Lightning's own count (`batch_progress.current.processed`), read
when the checkpoint is written. The sampler's yield count would be one batch ahead of it: the
trainer's data fetcher prefetches a batch.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from torch.utils.data import BatchSampler, DataLoader


class ResumableLoader(DataLoader):
    """A DataLoader over a sampler with `skip_next(n)`; `trainer` is the fit it feeds (set by the datamodule).

    The sampler may be the loader's `batch_sampler` (it yields lists of indices: n counts batches) or
    its `sampler` under the default `BatchSampler` (n counts indices: batches x batch_size).
    """

    trainer: L.Trainer | None = None

    def resumable_sampler(self) -> tuple[Any, int]:
        """(the sampler that skips, how many of its items one batch is)."""
        batch_sampler = self.batch_sampler
        if type(batch_sampler) is BatchSampler:  # DataLoader's own: batch_size indices of `sampler` per batch
            return batch_sampler.sampler, batch_sampler.batch_size
        return batch_sampler, 1

    def state_dict(self) -> dict[str, int]:
        sampler, _ = self.resumable_sampler()
        done = 0
        if self.trainer is not None:
            done = int(self.trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        return {"epoch": int(sampler.epoch), "batches_done": done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler, per_batch = self.resumable_sampler()
        sampler.set_epoch(int(state["epoch"]))
        sampler.skip_next(int(state["batches_done"]) * per_batch)

