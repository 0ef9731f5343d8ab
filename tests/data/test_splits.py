"""Source-disjoint hash splits: grouping, stability across versions, ratios, validation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ie_eval.data.records import EditRecord
from ie_eval.data.splits import check_source_disjoint, split_of, split_records, unit_hash

RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}


def record(source: str, pair: str, critique: str | None = None) -> EditRecord:
    return EditRecord(pair_id=pair, source_id=source, source_image=Path(f"/{source}.png"),
                      edited_image=Path(f"/{pair}.png"), instruction="edit", critique=critique,
                      critique_id=critique)


def many_records(n_sources: int) -> list[EditRecord]:
    """Each source has 3 pairs, each pair 2 critiques."""
    return [record(f"src_{s:04d}", f"src_{s:04d}/p{p}", f"c{c}")
            for s in range(n_sources) for p in range(3) for c in range(2)]


def test_every_record_of_a_source_is_in_one_split() -> None:
    splits = split_records(many_records(300), RATIOS)
    owner: dict[str, set[str]] = {}
    for name, records in splits.items():
        for r in records:
            owner.setdefault(r.source_id, set()).add(name)
    assert len(owner) == 300 and all(len(names) == 1 for names in owner.values())
    check_source_disjoint(splits)


def test_split_records_matches_split_of_and_keeps_order() -> None:
    records = many_records(50)
    splits = split_records(records, RATIOS)
    assert set(splits) == {"train", "val", "test"}
    for name, members in splits.items():
        assert all(split_of(r.source_id, RATIOS) == name for r in members)
        assert members == [r for r in records if r in members]
    assert sum(len(m) for m in splits.values()) == len(records)


def test_assignments_are_stable_across_versions() -> None:
    # Computed once with sha256; a change here reshuffles every user's splits.
    expected = {"src_0000": "test", "src_0001": "train", "src_0010": "val", "src_0012": "test",
                "src_0015": "test", "ebench/0042": "train"}
    assert {s: split_of(s) for s in expected} == expected
    assert unit_hash("src_0000") == pytest.approx(0.082512, abs=1e-6)


def test_unit_hash_is_sha256_of_salt_and_key() -> None:
    digest = hashlib.sha256(b"ie-eval\x00src_0001").digest()
    assert unit_hash("src_0001") == int.from_bytes(digest[:8], "big") / 2.0**64


def test_ratios_are_approximately_respected_on_2000_sources() -> None:
    counts = {"train": 0, "val": 0, "test": 0}
    for s in range(2000):
        counts[split_of(f"source-{s}", RATIOS)] += 1
    assert abs(counts["train"] / 2000 - 0.8) < 0.03
    assert abs(counts["val"] / 2000 - 0.1) < 0.025
    assert abs(counts["test"] / 2000 - 0.1) < 0.025


def test_ratio_order_does_not_matter() -> None:
    reordered = {"test": 0.1, "train": 0.8, "val": 0.1}
    assert all(split_of(f"s{i}", RATIOS) == split_of(f"s{i}", reordered) for i in range(200))


def test_salt_changes_the_assignment() -> None:
    moved = sum(split_of(f"s{i}", RATIOS) != split_of(f"s{i}", RATIOS, salt="other") for i in range(500))
    assert moved > 50


def test_growing_a_split_only_moves_sources_into_it() -> None:
    bigger_test = {"test": 0.2, "train": 0.7, "val": 0.1}
    for i in range(500):
        before, after = split_of(f"s{i}", RATIOS), split_of(f"s{i}", bigger_test)
        assert before == after or (before, after) == ("train", "test")


@pytest.mark.parametrize(
    ("ratios", "message"),
    [
        ({}, "empty"),
        ({"train": 0.9, "val": 0.2}, "sum to 1"),
        ({"train": 1.1, "val": -0.1}, "positive"),
        ({"train": 1.0, "val": 0.0}, "positive"),
        ({"train": float("nan")}, "positive"),
        ({"train": 0.5, "val": 0.4}, "sum to 1"),
    ],
)
def test_invalid_ratios_are_rejected(ratios: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_of("s", ratios)
    with pytest.raises(ValueError, match=message):
        split_records([], ratios)


def test_ratios_within_tolerance_are_accepted() -> None:
    assert split_of("s", {"train": 0.7, "val": 0.2, "test": 0.1 + 1e-9}) in {"train", "val", "test"}


def test_check_source_disjoint_names_the_leaking_source() -> None:
    with pytest.raises(ValueError, match="source 'x' is in both 'train' and 'test'"):
        check_source_disjoint({"train": [record("x", "p1")], "test": [record("x", "p2")]})
