"""Dynamic micro-batching: many requests in, one score-only forward pass per batch out.

Requests wait in a bounded asyncio queue; one batcher task takes the first, gathers more
until it holds `max_batch_size` items or `max_wait_ms` passed, and hands the records to a
single worker thread that owns the model. Each request gets its slice of the results through
its own future, so answers are never lost, duplicated or reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ie_eval.data.collate import CollateError
from ie_eval.data.records import EditRecord
from ie_eval.serve.base import RewardScores

log = logging.getLogger(__name__)

ScoreFn = Callable[[Sequence[EditRecord]], list[RewardScores]]


class QueueFullError(RuntimeError):
    """The request queue holds `max_queue` requests already; the caller should retry later."""


class BatcherStoppedError(RuntimeError):
    """The batcher is not running (starting up or shutting down)."""


@dataclass
class Pending:
    """One admitted request: its prepared records and the future its handler awaits."""

    records: list[EditRecord]
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Gathers queued requests into batches for `score_fn`, run on one dedicated worker thread.

    max_batch_size: items per batch (a larger single request is still taken whole; `score_fn`
        splits it). max_wait_ms: extra wait for company once the first request is in hand.
    max_queue: requests that may wait; `submit` raises QueueFullError beyond it.
    worker_init: run once on the worker thread before it scores (e.g. its torch thread count).
    """

    def __init__(
        self,
        score_fn: ScoreFn,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        worker_init: Callable[[], None] | None = None,
    ) -> None:
        self.score_fn = score_fn
        self.worker_init = worker_init
        self.max_batch_size = int(max_batch_size)
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self.queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=int(max_queue))
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task | None = None
        self._carry: Pending | None = None
        self.batches_run = 0
        self.arriving = 0  # requests admitted and being decoded, not yet queued
        self.last_batch_requests = 0
        self.items_scored = 0
        self.failed_in_a_row = 0  # batches (or lone requests) whose scoring raised, since the last success
        self.last_error = ""

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread and the batching task on the running loop."""
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="reward-model", initializer=self.worker_init
        )
        self._task = asyncio.get_running_loop().create_task(self._run(), name="reward-batcher")

    async def stop(self) -> None:
        """Stop batching; requests still queued are failed with BatcherStoppedError."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        leftovers = [self._carry] if self._carry is not None else []
        self._carry = None
        while not self.queue.empty():
            leftovers.append(self.queue.get_nowait())
        for pending in leftovers:
            if not pending.future.done():
                pending.future.set_exception(BatcherStoppedError("server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # --- admission ----------------------------------------------------------------------
    @contextlib.contextmanager
    def admitting(self) -> Iterator[None]:
        """Mark a request as on its way to `submit` (lets the batcher wait for it)."""
        self.arriving += 1
        try:
            yield
        finally:
            self.arriving -= 1

    def submit(self, records: list[EditRecord]) -> asyncio.Future:
        """Queue a request; the returned future resolves to its results (in order) or an error."""
        if not self.running:
            raise BatcherStoppedError("the reward model worker is not running")
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait(Pending(records, future))
        except asyncio.QueueFull:
            raise QueueFullError(f"request queue is full (max_queue={self.queue.maxsize} requests)") from None
        return future

    # --- batching loop ------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            batch = [p for p in batch if not p.future.done()]  # timed-out requests were cancelled
            if batch:
                await self._score(loop, batch)

    async def _gather(self) -> list[Pending]:
        """The first waiting request plus whatever joins within max_wait, up to max_batch_size items."""
        first = await self._next(None)
        batch, items = [first], len(first.records)
        deadline = asyncio.get_running_loop().time() + self.wait_budget()
        while items < self.max_batch_size:
            pending = await self._next(deadline - asyncio.get_running_loop().time())
            if pending is None:
                break
            if items + len(pending.records) > self.max_batch_size:
                self._carry = pending  # would overflow this batch: it opens the next one
                break
            batch.append(pending)
            items += len(pending.records)
        return batch

    def wait_budget(self) -> float:
        """max_wait when company is likely (requests being admitted now, or the last batch was
        shared), else 0: a lone client (e.g. one GRPO trainer) never pays the batching delay."""
        return self.max_wait_s if self.arriving > 0 or self.last_batch_requests > 1 else 0.0

    async def _next(self, timeout: float | None) -> Pending | None:
        """The carried-over request, else the next queued one; None when `timeout` passes first."""
        if self._carry is not None:
            pending, self._carry = self._carry, None
            return pending
        if not self.queue.empty():
            return self.queue.get_nowait()
        if timeout is None:
            return await self.queue.get()
        if timeout <= 0:
            return None
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _score(self, loop: asyncio.AbstractEventLoop, batch: list[Pending]) -> None:
        """Score the batch on the worker thread; if it fails, score requests alone to isolate the bad one."""
        records = [record for pending in batch for record in pending.records]
        try:
            results = await loop.run_in_executor(self._executor, self.score_fn, records)
        except asyncio.CancelledError:
            for pending in batch:  # stopping mid-batch: its requests get an answer, not a hang
                if not pending.future.done():
                    pending.future.set_exception(BatcherStoppedError("server is shutting down"))
            raise
        except Exception as err:
            if len(batch) == 1:
                if not isinstance(err, CollateError):  # the model failed, not the request's input
                    self.failed_in_a_row += 1
                    self.last_error = f"{type(err).__name__}: {err}"[:300]
                _fail(batch[0], err)
                return
            log.warning("batch of %d requests failed (%s); scoring them one by one", len(batch), err)
            for pending in batch:
                await self._score(loop, [pending])
            return
        self.batches_run += 1
        self.failed_in_a_row = 0
        self.last_batch_requests = len(batch)
        self.items_scored += len(records)
        start = 0
        for pending in batch:
            end = start + len(pending.records)
            if not pending.future.done():
                pending.future.set_result(results[start:end])
            start = end


def _fail(pending: Pending, err: Exception) -> None:
    """Hand a scoring error to its request (an unexpected one is logged with its traceback)."""
    if not isinstance(err, CollateError):
        log.error("scoring failed: %s", err, exc_info=err)
    if not pending.future.done():
        pending.future.set_exception(err)
