"""StratifiedEditSampler: caps, rotation coverage, determinism, eval mode and DDP shards."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

from ie_eval.data.records import EditRecord
from ie_eval.data.sampler import StratifiedEditSampler, coverage_bound

K, M = 3, 2


def uneven_keys() -> list[tuple[str, str]]:
    """Sources with 1..8 pairs, pairs with 1..5 samples, interleaved so groups are not contiguous."""
    keys = []
    for source in range(8):
        for pair in range(source + 1):
            keys.extend([(f"s{source}", f"s{source}/p{pair}")] * (1 + (source + pair) % 5))
    return keys[::2] + keys[1::2]


def sampler(keys=None, **kwargs) -> StratifiedEditSampler:
    options = {"max_pairs_per_source": K, "max_critiques_per_pair": M, "seed": 7, **kwargs}
    return StratifiedEditSampler(uneven_keys() if keys is None else keys, **options)


def epoch(s: StratifiedEditSampler, e: int) -> list[int]:
    s.set_epoch(e)
    return list(s)


def test_caps_hold_every_epoch() -> None:
    keys, s = uneven_keys(), sampler()
    for e in range(12):
        indices = epoch(s, e)
        assert len(indices) == len(set(indices))
        pairs_per_source = Counter(source for source, _ in {keys[i] for i in indices})
        samples_per_pair = Counter(keys[i] for i in indices)
        assert max(pairs_per_source.values()) <= K
        assert max(samples_per_pair.values()) <= M


def test_every_source_and_pair_appears_each_epoch_up_to_the_cap() -> None:
    keys, s = uneven_keys(), sampler()
    indices = epoch(s, 3)
    pairs_per_source = Counter(source for source, _ in {keys[i] for i in indices})
    n_pairs = Counter(source for source, _ in set(keys))
    assert pairs_per_source == {source: min(n, K) for source, n in n_pairs.items()}


def test_order_and_selection_change_across_epochs() -> None:
    s = sampler()
    first, second = epoch(s, 0), epoch(s, 1)
    assert first != second and set(first) != set(second)


def test_same_seed_same_epochs_different_seed_differs() -> None:
    a, b, c = sampler(seed=3), sampler(seed=3), sampler(seed=4)
    assert [epoch(a, e) for e in range(4)] == [epoch(b, e) for e in range(4)]
    assert [epoch(a, e) for e in range(4)] != [epoch(c, e) for e in range(4)]


def test_full_coverage_exactly_at_epochs_to_cover() -> None:
    keys = uneven_keys()
    for seed in range(5):
        s = sampler(seed=seed)
        needed = s.epochs_to_cover()
        seen: set[int] = set()
        for e in range(needed):
            if e == needed - 1:
                assert len(seen) < len(keys)  # not covered one epoch earlier: the count is exact
            seen.update(epoch(s, e))
        assert seen == set(range(len(keys)))
        assert needed <= s.coverage_bound()


def test_coverage_bound_formula() -> None:
    # 13 pairs, cap 6: ceil(13 / 6) = 3 epochs; 7 critiques, cap 3: 3 visits.
    assert coverage_bound(13, 1, 6, 3) == 3
    assert coverage_bound(1, 7, 6, 3) == 3
    assert coverage_bound(5, 4, 2, 3) == math.ceil(5 * 2 / 2)
    keys = [("s", f"p{p}") for p in range(13)]
    for seed in range(4):
        s = StratifiedEditSampler(keys, max_pairs_per_source=6, seed=seed)
        assert s.epochs_to_cover() == 3
        assert set(epoch(s, 0)) | set(epoch(s, 1)) != set(range(13))
        assert set(epoch(s, 0)) | set(epoch(s, 1)) | set(epoch(s, 2)) == set(range(13))


def test_critiques_rotate_per_visit_of_their_pair() -> None:
    # 4 pairs share a source (cap 2): each pair is visited every other epoch, and its
    # 6 critiques (cap 3) must still all be seen by its second visit.
    keys = [("s", f"p{p}") for p in range(4) for _ in range(6)]
    s = StratifiedEditSampler(keys, max_pairs_per_source=2, max_critiques_per_pair=3, seed=1)
    assert s.epochs_to_cover() == 4
    assert set().union(*(epoch(s, e) for e in range(4))) == set(range(24))


def test_len_is_exact_for_each_epoch() -> None:
    s = sampler()
    lengths = set()
    for e in range(6):
        s.set_epoch(e)
        assert len(s) == len(list(s))
        lengths.add(len(s))
    assert len(lengths) > 1  # uneven groups: the epoch size really varies


def test_eval_mode_yields_everything_in_order() -> None:
    keys = uneven_keys()
    s = sampler(shuffle=False)
    assert epoch(s, 0) == epoch(s, 5) == list(range(len(keys)))
    assert len(s) == len(keys) and s.epochs_to_cover() == 1


def test_eval_mode_with_caps_is_deterministic() -> None:
    keys = uneven_keys()
    s = sampler(shuffle=False, cap_unshuffled=True)
    first = epoch(s, 0)
    assert first == epoch(s, 4) == sorted(first) and len(first) < len(keys)
    assert max(Counter(keys[i] for i in first).values()) <= M
    assert s.epochs_to_cover() is None


def test_no_caps_when_none() -> None:
    keys = uneven_keys()
    s = sampler(max_pairs_per_source=None, max_critiques_per_pair=None)
    assert sorted(epoch(s, 2)) == list(range(len(keys)))


@pytest.mark.parametrize("drop_last", [False, True])
def test_ddp_shards_are_equal_and_disjoint(drop_last: bool) -> None:
    replicas = 3
    shards = [sampler(num_replicas=replicas, rank=r, drop_last=drop_last) for r in range(replicas)]
    for e in range(4):
        full = shards[0].epoch_indices(e)
        parts = [epoch(s, e) for s in shards]
        assert len({len(p) for p in parts}) == 1
        assert all(len(p) == len(s) for p, s in zip(parts, shards, strict=True))
        combined = [i for p in parts for i in p]
        if drop_last:
            assert len(combined) == len(full) // replicas * replicas
            assert len(set(combined)) == len(combined) and set(combined) <= set(full)
        else:
            padding = len(combined) - len(full)
            assert 0 <= padding < replicas
            assert Counter(combined) == Counter(full + full[:padding])


def test_ddp_shards_split_one_epoch_not_separate_epochs() -> None:
    whole = sampler()
    parts = [sampler(num_replicas=2, rank=r, drop_last=True) for r in range(2)]
    assert sorted(epoch(parts[0], 1) + epoch(parts[1], 1)) == sorted(epoch(whole, 1)[: len(epoch(whole, 1)) // 2 * 2])


def test_records_and_keys_give_the_same_sampler() -> None:
    keys = uneven_keys()
    records = [EditRecord(pair_id=p, source_id=s, source_image=Path("/a.png"), edited_image=Path("/b.png"),
                          instruction="x") for s, p in keys]
    assert epoch(sampler(records), 2) == epoch(sampler(keys), 2)


def test_works_as_a_dataloader_sampler() -> None:
    keys = uneven_keys()
    s = sampler()
    s.set_epoch(1)
    batches = list(DataLoader(list(range(len(keys))), batch_size=4, sampler=s))
    assert sum(len(b) for b in batches) == len(s)


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="caps must be >= 1"):
        sampler(max_pairs_per_source=0)
    with pytest.raises(ValueError, match="rank"):
        sampler(num_replicas=2, rank=2)
    with pytest.raises(TypeError, match="item 0"):
        StratifiedEditSampler(["not a key"])


def test_empty_dataset() -> None:
    s = StratifiedEditSampler([], num_replicas=2, rank=1)
    assert len(s) == 0 and list(s) == [] and s.epochs_to_cover() == 0
