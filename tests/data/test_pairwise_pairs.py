"""Preference pairs for the pairwise reward model and GCPO: sources, orientation, ties, source-disjoint splits."""

from __future__ import annotations

import pytest

from ie_eval.data.pairwise import read_preference_groups, split_pairs
from ie_eval.data.splits import DEFAULT_RATIOS, DEFAULT_SALT


def test_synthetic_pairwise_view_ranks_twin_edits_by_mean_mos(synth_manifest):
    groups = read_preference_groups(f"synth:{synth_manifest.parent}")
    assert groups and all(g.k == 2 for g in groups)
    for group in groups:
        first, second = group.records
        assert first.source_id == second.source_id and first.instruction == second.instruction
        better = 0 if sum(first.mos) > sum(second.mos) else 1
        assert group.ranks[better] == 1


def test_pairs_know_which_side_is_preferred_and_the_truth_gap(synth_manifest):
    groups = read_preference_groups(f"synth:{synth_manifest.parent}")
    pairs = [p for split in split_pairs(groups, dict(DEFAULT_RATIOS), DEFAULT_SALT).values() for p in split]
    assert pairs and all(p.label in (0.0, 1.0) for p in pairs)
    for pair in pairs:
        assert sum(pair.preferred.mos) >= sum(pair.rejected.mos)
        truth = [sum(r.meta["truth_mos"]) / 3 for r in (pair.first, pair.second)]
        assert pair.truth_gap == pytest.approx(abs(truth[0] - truth[1]))


def test_splits_are_source_disjoint_and_ties_are_opt_in(synth_manifest):
    groups = read_preference_groups(f"synth:{synth_manifest.parent}")
    splits = split_pairs(groups, dict(DEFAULT_RATIOS), DEFAULT_SALT)
    owners = {}
    for name, pairs in splits.items():
        for pair in pairs:
            assert owners.setdefault(pair.first.source_id, name) == name
    tied = groups[0].__class__(groups[0].group_id, groups[0].records, (1, 1))
    assert split_pairs([tied], {"train": 1.0}, DEFAULT_SALT)["train"] == []
    assert [p.label for p in split_pairs([tied], {"train": 1.0}, DEFAULT_SALT, include_ties=True)["train"]] == [0.5]


def test_a_source_that_is_not_a_preference_layout_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a preference layout"):
        read_preference_groups(f"ebench:{tmp_path / 'x.csv'}")
    with pytest.raises(ValueError, match="KIND:PATH"):
        read_preference_groups("synth")
