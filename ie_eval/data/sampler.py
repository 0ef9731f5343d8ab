"""Dynamic stratified sampling (ReasonEdit appendix C.3).

ReasonEdit-Reward has many critiques for few (source, edited) pairs and few source images,
so uniform sampling shows the same source over and over. Per epoch this sampler takes at
most K pairs of each source image and at most M samples (critiques) of each pair.

Which members a capped group contributes rotates instead of being drawn at random: each
group gets a permutation of its members fixed by `seed`, and the group's v-th visit takes
the window ``perm[v*cap : v*cap + cap]`` (wrapping around). Sources are visited every
epoch, so source s's window in epoch e is window e; a pair is visited only in the epochs
that select it, and its critique window advances per visit, not per epoch. So every sample
is seen within ``ceil(n_pairs * ceil(n_critiques / M) / K)`` epochs of its source
(`coverage_bound`); `StratifiedEditSampler.epochs_to_cover()` gives the exact number.
The selected indices are then shuffled with a generator seeded by (seed, epoch).

With ``shuffle=False`` (validation, test) the sampler yields every index in dataset order;
``cap_unshuffled=True`` instead applies the caps deterministically (the first K pairs of a
source and first M samples of a pair, in dataset order, the same every epoch).

With Lightning, pass ``Trainer(use_distributed_sampler=False)``: this sampler shards by
itself (like DistributedSampler: equal-length shards, padded by repeating from the start,
or truncated with ``drop_last=True``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

from ie_eval.data.length_buckets import bucket_by_length
from ie_eval.data.records import EditRecord

GroupKey = tuple[str, str]  # (source_id, pair_id)
NO_CAP = sys.maxsize  # what a cap of None means


def group_keys_of(items: Sequence[EditRecord] | Sequence[GroupKey]) -> list[GroupKey]:
    """(source_id, pair_id) per dataset index, from records or from ready-made key pairs."""
    keys: list[GroupKey] = []
    for index, item in enumerate(items):
        if isinstance(item, EditRecord):
            keys.append((item.source_id, item.pair_id))
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            keys.append((str(item[0]), str(item[1])))
        else:
            raise TypeError(f"item {index}: expected an EditRecord or a (source_id, pair_id) pair, got {item!r}")
    return keys


def build_groups(keys: Sequence[GroupKey]) -> list[list[list[int]]]:
    """Dataset indices nested as sources -> pairs -> samples, each level in first-seen order."""
    source_slot: dict[str, int] = {}
    pair_slot: dict[GroupKey, tuple[int, int]] = {}
    groups: list[list[list[int]]] = []
    for index, (source_id, pair_id) in enumerate(keys):
        if (source_id, pair_id) not in pair_slot:
            if source_id not in source_slot:
                source_slot[source_id] = len(groups)
                groups.append([])
            source = source_slot[source_id]
            pair_slot[(source_id, pair_id)] = (source, len(groups[source]))
            groups[source].append([])
        source, pair = pair_slot[(source_id, pair_id)]
        groups[source][pair].append(index)
    return groups


def window(n_members: int, cap: int, visit: int) -> list[int]:
    """Positions (into a group's permutation) taken on its `visit`-th visit (0-based)."""
    if n_members <= cap:
        return list(range(n_members))
    start = visit * cap
    return [(start + offset) % n_members for offset in range(cap)]


def visits_before(position: int, n_members: int, cap: int, epoch: int) -> int:
    """How many of epochs 0..epoch-1 took the member at `position` of a group visited every epoch."""
    if n_members <= cap:
        return epoch
    taken = epoch * cap  # window slots consumed before this epoch
    return 0 if taken <= position else (taken - position - 1) // n_members + 1


def coverage_bound(n_pairs: int, max_samples_in_pair: int, max_pairs: int, max_samples: int) -> int:
    """Epochs within which rotation shows every sample of a source: ceil(n_pairs * v / K), v = ceil(m / M)."""
    visits_needed = max(1, math.ceil(max_samples_in_pair / max_samples))
    if n_pairs <= max_pairs:
        return visits_needed
    return math.ceil(n_pairs * visits_needed / max_pairs)


def distributed_replicas(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """(num_replicas, rank), filled from torch.distributed when initialized, else (1, 0)."""
    initialized = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialized else 1
    if rank is None:
        rank = dist.get_rank() if initialized else 0
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, got {num_replicas=}, {rank=}")
    return num_replicas, rank


def shard(indices: list[int], num_replicas: int, rank: int, drop_last: bool) -> list[int]:
    """This rank's equal-length share: pad by repeating from the start, or drop the tail."""
    if num_replicas == 1:
        return list(indices)
    if not indices:
        return []
    if drop_last:
        total = len(indices) // num_replicas * num_replicas
        padded = indices[:total]
    else:
        total = math.ceil(len(indices) / num_replicas) * num_replicas
        repeats = math.ceil(total / len(indices))
        padded = (indices * repeats)[:total]
    return padded[rank:total:num_replicas]


class StratifiedEditSampler(Sampler[int]):
    """Per-epoch capped, rotating, shuffled (and optionally sharded) dataset indices.

    Args:
        records_or_group_keys: the dataset's records, or its (source_id, pair_id) per index.
        max_pairs_per_source: K, pairs of one source image per epoch (paper: 6); None = no cap.
        max_critiques_per_pair: M, samples of one pair per epoch (paper: 3); None = no cap.
        shuffle: training mode (caps + rotation + shuffle); False for validation/test.
        seed: fixes the group permutations and, with the epoch, the epoch's order.
        num_replicas / rank: DDP shard; default from torch.distributed, else a single process.
        drop_last: drop the tail so shards are equal without padding.
        cap_unshuffled: with shuffle=False, apply the caps (first K / first M) instead of all.
        lengths / bucket_batch_size / bucket_window: with shuffle, re-order each epoch into batches of
            `bucket_batch_size` (all ranks' samples of one step) of similar `lengths[index]`, sorted within
            windows of `bucket_window` batches (`length_buckets.bucket_by_length`); None: no bucketing.
    """

    def __init__(
        self,
        records_or_group_keys: Sequence[EditRecord] | Sequence[GroupKey],
        *,
        max_pairs_per_source: int | None = 6,
        max_critiques_per_pair: int | None = 3,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        cap_unshuffled: bool = False,
        lengths: Sequence[int] | None = None,
        bucket_batch_size: int | None = None,
        bucket_window: int = 16,
    ) -> None:
        max_pairs_per_source = NO_CAP if max_pairs_per_source is None else max_pairs_per_source
        max_critiques_per_pair = NO_CAP if max_critiques_per_pair is None else max_critiques_per_pair
        if max_pairs_per_source < 1 or max_critiques_per_pair < 1:
            raise ValueError(f"caps must be >= 1 (or None), got {max_pairs_per_source=}, {max_critiques_per_pair=}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.max_pairs = max_pairs_per_source
        self.max_samples = max_critiques_per_pair
        self.shuffle = shuffle
        self.capped = shuffle or cap_unshuffled
        self.seed = seed
        self.drop_last = drop_last
        self.num_replicas, self.rank = distributed_replicas(num_replicas, rank)
        self.groups = build_groups(group_keys_of(records_or_group_keys))
        if lengths is not None and len(lengths) != len(records_or_group_keys):
            raise ValueError(f"lengths: {len(lengths)} values for {len(records_or_group_keys)} dataset indices")
        self.lengths, self.bucket_batch_size, self.bucket_window = lengths, bucket_batch_size, int(bucket_window)
        self.num_samples_total = sum(len(pair) for source in self.groups for pair in source)
        self._pair_orders, self._sample_orders = self._group_permutations()
        self.epoch = 0
        self._cache: tuple[int, list[int]] | None = None
        self._skip = 0

    def _group_permutations(self) -> tuple[list[list[int]], list[list[list[int]]]]:
        """Per-source pair orders and per-pair sample orders; identity when not shuffling."""
        if not self.shuffle:
            pair_orders = [list(range(len(source))) for source in self.groups]
            sample_orders = [[list(pair) for pair in source] for source in self.groups]
            return pair_orders, sample_orders
        rng = np.random.default_rng(self.seed)
        pair_orders = [rng.permutation(len(source)).tolist() for source in self.groups]
        sample_orders = [[rng.permutation(pair).tolist() for pair in source] for source in self.groups]
        return pair_orders, sample_orders

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose caps window and order `__iter__` / `__len__` use."""
        self.epoch = int(epoch)

    def _select(self, epoch: int) -> list[int]:
        """Dataset indices this epoch exposes, before shuffling and sharding (all ranks alike)."""
        if not self.capped:
            return list(range(self.num_samples_total))
        visit_epoch = epoch if self.shuffle else 0
        selected: list[int] = []
        for source, pair_order, sample_orders in zip(self.groups, self._pair_orders, self._sample_orders, strict=True):
            for position in window(len(source), self.max_pairs, visit_epoch):
                pair = pair_order[position]
                visit = visits_before(position, len(source), self.max_pairs, visit_epoch)
                order = sample_orders[pair]
                selected.extend(order[slot] for slot in window(len(order), self.max_samples, visit))
        return selected if self.shuffle else sorted(selected)

    def epoch_indices(self, epoch: int | None = None) -> list[int]:
        """The whole epoch's indices across all ranks (selected, then shuffled by (seed, epoch))."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        indices = self._select(epoch)
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(indices))
            indices = [indices[i] for i in order]
            if self.lengths is not None and self.bucket_batch_size:
                indices = bucket_by_length(indices, self.lengths, self.bucket_batch_size, self.bucket_window,
                                           np.random.default_rng([self.seed, epoch, 1]))
        self._cache = (epoch, indices)
        return indices

    def skip_next(self, count: int) -> None:
        """The next `__iter__` starts after this rank's first `count` indices (a mid-epoch resume)."""
        self._skip = int(count)

    def __iter__(self) -> Iterator[int]:
        skip, self._skip = self._skip, 0
        return iter(shard(self.epoch_indices(), self.num_replicas, self.rank, self.drop_last)[skip:])

    def __len__(self) -> int:
        """This rank's exact number of indices for the current epoch."""
        total = len(self.epoch_indices())
        if self.num_replicas == 1:
            return total
        if self.drop_last:
            return total // self.num_replicas
        return math.ceil(total / self.num_replicas)

    def epochs_to_cover(self) -> int | None:
        """Exact number of epochs (from epoch 0) after which every index has been yielded once.

        None when it never happens (caps applied deterministically to a group larger than them).
        """
        if not self.capped:
            return 1 if self.num_samples_total else 0
        if not self.shuffle and any(
            len(source) > self.max_pairs or any(len(p) > self.max_samples for p in source)
            for source in self.groups
        ):
            return None
        needed = 0
        for source, pair_order in zip(self.groups, self._pair_orders, strict=True):
            n_pairs = len(source)
            for position, pair in enumerate(pair_order):
                visits = max(1, math.ceil(len(source[pair]) / self.max_samples))
                if n_pairs <= self.max_pairs:
                    last_epoch = visits - 1
                else:  # the member at `position` is visited at window slots position + k * n_pairs
                    last_epoch = (position + (visits - 1) * n_pairs) // self.max_pairs
                needed = max(needed, last_epoch + 1)
        return needed

    def coverage_bound(self) -> int:
        """Seed-independent upper bound on `epochs_to_cover()` (max over sources of `coverage_bound`)."""
        return max(
            (coverage_bound(len(s), max(len(p) for p in s), self.max_pairs, self.max_samples) for s in self.groups),
            default=0,
        )
