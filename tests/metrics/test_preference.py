"""Pairwise accuracy with ties and K-way group accuracy against hand-enumerated examples."""

import numpy as np
import pytest

from ie_eval.data.adapters.preference import PreferenceGroup
from ie_eval.metrics.preference import (
    BENCH_TIE_POLICIES,
    TiePolicy,
    calibrate_tolerance,
    group_pairs,
    preference_accuracy,
)

# (scores, ranks): a right pair, a wrong pair, a tied prediction, a tie in the truth (|d| = 0.05).
PAIRS = [([3.0, 1.0], [1, 2]), ([1.0, 2.0], [1, 2]), ([2.0, 2.0], [1, 2]), ([5.0, 5.05], [1, 1])]


def test_pairwise_two_way_skips_truth_ties_and_halves_tied_predictions():
    result = preference_accuracy(PAIRS, TiePolicy("skip", "half", 0.0))
    assert result["n_pairs"] == 3  # the truth tie is left out
    assert result["pairwise_accuracy"] == pytest.approx((1 + 0 + 0.5) / 3)


def test_pairwise_tied_prediction_counts_wrong_when_asked():
    result = preference_accuracy(PAIRS, TiePolicy("skip", "wrong", 0.0))
    assert result["pairwise_accuracy"] == pytest.approx(1 / 3)


def test_pairwise_truth_tie_is_right_only_within_tolerance():
    inside = preference_accuracy(PAIRS, TiePolicy("tolerance", "wrong", 0.1))
    # right 1, wrong 0, tied prediction of a strict pair 0, truth tie with |d| = 0.05 <= 0.1 -> 1
    assert inside["n_pairs"] == 4 and inside["pairwise_accuracy"] == pytest.approx(2 / 4)
    outside = preference_accuracy(PAIRS, TiePolicy("tolerance", "half", 0.0))
    # right 1, wrong 0, tied prediction 0.5, truth tie missed (|d| > 0) 0
    assert outside["pairwise_accuracy"] == pytest.approx(1.5 / 4)


def test_pairwise_accuracy_does_not_depend_on_candidate_order():
    flipped = [(s[::-1], r[::-1]) for s, r in PAIRS]
    for policy in (TiePolicy(), TiePolicy("tolerance", "wrong", 0.1)):
        assert preference_accuracy(flipped, policy) == preference_accuracy(PAIRS, policy)


def test_kway_group_counts_only_when_whole_ordering_is_right():
    groups = [
        ([0.9, 0.5, 0.1], [1, 2, 3]),  # K=3 right
        ([0.9, 0.1, 0.5], [1, 2, 3]),  # K=3: one of three pairs inverted -> wrong
        ([1.0, 0.0], [2, 1]),  # K=2 wrong
        ([4.0, 3.0, 2.0, 1.0], [1, 2, 3, 4]),  # K=4 right
        ([1.0, 1.0, 0.0], [1, 1, 3]),  # K=3 with a truth tie; the tie is skipped, the rest right
    ]
    result = preference_accuracy(groups, TiePolicy("skip", "half", 0.0))
    by_k = result["group_accuracy"]
    assert by_k["K=2"] == {"accuracy": 0.0, "n_groups": 1}
    assert by_k["K=3"]["accuracy"] == pytest.approx(2 / 3) and by_k["K=3"]["n_groups"] == 3
    assert by_k["K=4"] == {"accuracy": 1.0, "n_groups": 1}
    assert by_k["overall"]["accuracy"] == pytest.approx(3 / 5)
    # Pairs: 3 + 3 + 1 + 6 + 2 judged (the tie skipped); wrong ones: 1 (group 2) + 1 (group 3).
    assert result["n_pairs"] == 15 and result["pairwise_accuracy"] == pytest.approx(13 / 15)
    # Predicting the tie exactly (tolerance 0, 3-way): the tied pair is right, the group still counts.
    strict = preference_accuracy(groups, TiePolicy("tolerance", "wrong", 0.0))
    assert strict["group_accuracy"]["K=3"]["accuracy"] == pytest.approx(2 / 3)


def test_half_credit_pair_makes_its_group_wrong():
    result = preference_accuracy([([1.0, 1.0, 0.0], [1, 2, 3])], TiePolicy("skip", "half", 0.0))
    assert result["pairwise_accuracy"] == pytest.approx(2.5 / 3)
    assert result["group_accuracy"]["overall"]["accuracy"] == 0.0


def test_truths_agree_with_preference_group_pairs(edit_record_factory):
    record = edit_record_factory("a")
    group = PreferenceGroup("g", (record, record, record, record), (1, 1, 3, 2))
    _, truths, _ = group_pairs([([0.0] * 4, group.ranks)])
    assert truths.tolist() == [p for _, _, p in group.pairs()]


def test_calibrated_tolerance_is_the_best_of_a_brute_force_search():
    rng = np.random.default_rng(3)
    groups = [(rng.normal(size=k).round(1).tolist(), rng.integers(1, 3, size=k).tolist()) for k in [2, 3, 2, 4] * 15]
    for policy in (TiePolicy("tolerance", "wrong", "calibrate"), TiePolicy("tolerance", "half", "calibrate")):
        calibrated = preference_accuracy(groups, policy)
        deltas, _, _ = group_pairs(groups)
        grid = np.unique(np.concatenate([[0.0], np.abs(deltas)]))
        brute = [preference_accuracy(groups, TiePolicy(policy.truth_ties, policy.pred_ties, float(t))) for t in grid]
        best = max(b["pairwise_accuracy"] for b in brute)
        assert calibrated["pairwise_accuracy"] == pytest.approx(best)
        first_best = next(float(t) for t, b in zip(grid, brute, strict=True) if b["pairwise_accuracy"] == pytest.approx(best))
        assert calibrated["tolerance"] == pytest.approx(first_best)


def test_calibration_without_judged_ties_keeps_zero_tolerance():
    deltas, truths, _ = group_pairs([([1.0, 0.0], [1, 2]), ([0.0, 1.0], [2, 1])])
    assert calibrate_tolerance(deltas, truths, TiePolicy("skip", "half", "calibrate")) == 0.0


def test_bench_policies_and_validation():
    assert BENCH_TIE_POLICIES["genai_bench"].truth_ties == "tolerance"
    assert BENCH_TIE_POLICIES["synth"].truth_ties == "skip"
    with pytest.raises(ValueError, match="truth_ties"):
        TiePolicy("count")
    with pytest.raises(ValueError, match="tolerance"):
        TiePolicy(tolerance=-1.0)
