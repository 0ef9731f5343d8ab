"""Length-bucketed training batches (`length_bucket_batches` of the data modules).

A padded batch costs its longest sample's length times its size. Within each window of W consecutive
batches of the epoch's shuffled order, the samples are sorted by length and cut into batches again;
then the order of all full batches is shuffled. The epoch still holds exactly the samples the
stratified sampler selected (the caps per source and pair are untouched), but a batch now holds
samples of similar length, so it pads less. The batches are no longer uniform draws: a batch holds
similar lengths, which changes which pairs the ranking loss sees together. Hence off by default.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ie_eval.data.records import EditRecord


def text_length(record: EditRecord) -> int:
    """The sort key: characters of the instruction and the critique (images are fitted to one pixel budget,
    so their token counts vary far less than the texts')."""
    return len(record.instruction) + len(record.critique or "")


def bucket_by_length(
    indices: Sequence[int], lengths: Sequence[int], batch_size: int, window_batches: int, rng: np.random.Generator
) -> list[int]:
    """`indices` re-ordered so that consecutive runs of `batch_size` hold similar `lengths[index]`.

    Sorted within windows of `window_batches * batch_size`, batches shuffled; a last partial batch stays last
    (so every batch a loader cuts from the result is one of these batches)."""
    if batch_size < 1 or window_batches < 1:
        raise ValueError(f"batch_size and window_batches must be >= 1, got {batch_size}, {window_batches}")
    span = batch_size * window_batches
    batches: list[list[int]] = []
    for start in range(0, len(indices), span):
        part = sorted(indices[start : start + span], key=lambda index: lengths[index])
        batches.extend(part[k : k + batch_size] for k in range(0, len(part), batch_size))
    tail = [batches.pop()] if batches and len(batches[-1]) < batch_size else []
    order = rng.permutation(len(batches)).tolist()
    return [index for batch in [batches[i] for i in order] + tail for index in batch]
