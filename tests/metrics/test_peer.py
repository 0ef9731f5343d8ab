"""The peers' metrics (IE-Critic-R1, EditReward, EditScore, per-prompt SRCC) against hand-enumerated examples."""

import math

import numpy as np
import pytest
from scipy import optimize, stats

from ie_eval.metrics.peer import (
    accuracy_without_ties,
    editreward_accuracies,
    editscore_accuracy,
    ie_critic_answer,
    logistic4,
    logistic_plcc,
    main_score,
    per_prompt_srcc,
    strict_group_correct,
    tie_calibrated_accuracy,
    tie_stats,
    with_parse_failures,
)


@pytest.mark.parametrize(("response", "score"), [
    ("<think>fine</think><answer>3.75</answer>", 3.75),
    ("<think>ok</think> <answer> 4 </answer>.", 4.0),
    ("<think>cut</think><answer>2.5", 2.5),  # unclosed: everything after the tag
    ("3.2", 3.2),  # untagged: the whole response
    ("<answer>good</answer>", None),
    ("no score", None),
    ("<answer>nan</answer>", None),
])
def test_ie_critic_answer_parses_as_their_eval_script(response, score):
    assert ie_critic_answer(response) == score


def test_logistic_plcc_is_pearson_after_their_four_parameter_fit():
    pred = np.array([1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5])
    mos = logistic4(pred, 5.0, 1.0, 2.8, 0.4) + np.array([0.05, -0.04, 0.03, -0.02, 0.01, 0.02, -0.03, 0.04])
    beta, _ = optimize.curve_fit(logistic4, pred, mos, p0=[mos.max(), mos.min(), pred.mean(), 0.5], maxfev=100000)
    expected = stats.pearsonr(logistic4(pred, *beta), mos)[0]
    assert logistic_plcc(pred, mos) == pytest.approx(expected, abs=1e-9)
    assert logistic_plcc(pred, mos) > stats.pearsonr(pred, mos)[0]  # the fit straightens the S-curve
    scores = main_score(pred, mos)
    assert scores["srcc"] == pytest.approx(stats.spearmanr(pred, mos)[0])
    assert scores["main_score"] == pytest.approx((scores["plcc"] + scores["srcc"]) / 2)
    assert math.isnan(logistic_plcc([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]))  # fewer than 4 items: no fit


def test_parse_failures_dropped_as_ie_critic_r1_or_counted():
    pred = [1.0, None, 3.0, 4.0, None, 2.0]
    mos = [1.0, 5.0, 3.0, 4.0, 4.5, 2.0]
    out = with_parse_failures(pred, mos)
    assert out["parse_failures"] == 2
    assert out["dropped"]["srcc"] == pytest.approx(1.0)  # the four parsed ones are in perfect order
    counted = stats.spearmanr([1.0, 1.0, 3.0, 4.0, 1.0, 2.0], mos)[0]  # failures at the lowest parsed score
    assert out["counted"]["srcc"] == pytest.approx(counted) and counted < 1.0


def test_tie_stats_and_accuracy_match_a_hand_count():
    h = np.array([1, -1, 0, 0, 1, -1])
    m = np.array([0.5, 0.2, 0.05, 0.9, 0.01, -0.3])
    # eps = 0.1: pair 0 C, 1 D (h m < 0), 2 Thm, 3 Th, 4 Tm, 5 C
    assert tie_stats(h, m, 0.1) == {"C": 2, "D": 1, "Th": 1, "Tm": 1, "Thm": 1}
    accuracy, eps = tie_calibrated_accuracy(h, m)
    # eps 0: C 3 (0, 4, 5), D 1, Th 2 -> 3/6; eps 0.05: C 2, D 1, Th 1, Tm 1, Thm 1 -> 3/6;
    # eps 0.2: C 2 (0, 5), Tm 2 (1, 4), Thm 1, Th 1 -> 3/6; eps 0.9: Thm 2, Tm 4 -> 2/6. The first max wins.
    assert (accuracy, eps) == (pytest.approx(0.5), 0.0)
    assert accuracy_without_ties(h, m) == pytest.approx(3 / 4)  # human ties leave; pairs 0, 4, 5 right of 4


def test_a_predicted_tie_is_wrong_without_a_tie_band():
    assert accuracy_without_ties([1, 1], [0.0, 0.3]) == pytest.approx(0.5)


def test_editreward_groups_k2_calibrated_k3_without_ties_strict_and_pooled():
    groups = [
        ([0.9, 0.1], [1, 2]),  # right
        ([0.5, 0.52], [1, 1]),  # human tie, |d| = 0.02
        ([0.2, 0.8], [1, 2]),  # wrong
        ([3.0, 2.0, 1.0], [1, 2, 3]),  # right order
        ([1.0, 2.0, 3.0], [1, 2, 3]),  # reversed: 0 of 3 pairs
    ]
    out = editreward_accuracies(groups)
    # K=2 pairs (h, m): (1, 0.8), (0, -0.02), (1, -0.6): eps 0 -> 1/3; eps 0.02 -> (1 + 1)/3; eps 0.6 -> 1/3
    assert out["k2_accuracy"] == pytest.approx(2 / 3) and out["k2_tie_eps"] == pytest.approx(0.02)
    assert out["k3_accuracy"] == pytest.approx(3 / 6)
    assert out["k2_strict_accuracy"] == pytest.approx(2 / 3) and out["k3_strict_accuracy"] == pytest.approx(1 / 2)
    # pooled 9 pairs: best eps keeps the tie (0.02) -> C 4 + Thm 1 over 9
    assert out["overall_accuracy"] == pytest.approx(5 / 9)
    assert strict_group_correct([1.0, 1.0, 2.0], [1, 1, 3], 10.0) is False  # human ties at K = 3 cannot match


def test_editscore_needs_a_strict_win_and_macro_averages_task_types():
    pairs = [(2.0, 1.0, "add"), (1.0, 1.0, "add"), (0.5, 0.9, "add"), (3.0, 2.9, "color"), (1.0, 0.0, "color")]
    out = editscore_accuracy(pairs)
    assert out["add"] == pytest.approx(1 / 3) and out["color"] == 1.0
    assert out["average"] == pytest.approx((1 / 3 + 1.0) / 2)


def test_per_prompt_srcc_averages_within_instruction_groups():
    prompts = ["a", "a", "a", "b", "b", "c", "d", "d"]
    pred = [1.0, 2.0, 3.0, 2.0, 1.0, 5.0, 1.0, 1.0]
    truth = [1.0, 2.0, 3.0, 1.0, 2.0, 5.0, 3.0, 4.0]
    out = per_prompt_srcc(pred, truth, prompts)
    # a: +1, b: -1, c: one item (skipped), d: constant prediction (undefined, dropped)
    assert out == {"per_prompt_srcc": pytest.approx(0.0), "prompts": 2}
