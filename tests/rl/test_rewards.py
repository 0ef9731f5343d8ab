"""GRPO reward components against hand-computed values; RE-Reward through a real in-process RewardScoring."""

import math

import pytest
import torch

from ie_eval.data.prompts import format_critique
from ie_eval.data.records import MOS_DIMS
from ie_eval.rl.rewards import CompositeReward, RewardSample
from ie_eval.rl.scorers import ScoringGuard
from ie_eval.rl.terms import (
    FormatTerm,
    MosScoreTerm,
    ReRewardTerm,
    WinRatioTerm,
    build_rewards,
    ie_critic_r1_accuracy,
    mos_to_text_scale,
)
from ie_eval.serve.base import RewardItem

PROBIT_75 = 0.6744897501960817  # Phi^-1(0.75): maps to 1 + 4 * 0.75 = 4 on the 1..5 text scale
OBSERVATIONS = {dim: "Looks fine." for dim in MOS_DIMS}


def critique(scores):
    return format_critique(OBSERVATIONS, scores)


def sample(text, mos=None, source="s.png", edited="e.png"):
    return RewardSample(source, edited, "make the circle blue", text, mos=mos)


@pytest.fixture(scope="module")
def local_reward():
    """A real RewardScoring around a tiny seeded RE-Reward model (tiny Qwen3-VL)."""
    from ie_eval.models.heads import HeadConfig
    from ie_eval.models.reward_model import RewardModel
    from ie_eval.serve.scoring import RewardScoring

    torch.manual_seed(0)
    model = RewardModel.build("tiny-qwen3-vl", head=HeadConfig(hidden_size=16)).eval()
    return RewardScoring(model, batch_size=8, max_pixels=64 * 64)


def test_mos_is_mapped_from_probit_targets_to_the_text_scale():
    mapped = mos_to_text_scale(torch.tensor([0.0, PROBIT_75, -PROBIT_75]))
    torch.testing.assert_close(mapped, torch.tensor([3.0, 4.0, 2.0]))


def test_mos_rewards_match_hand_computed_values():
    samples = [
        sample(critique([4, 3, 5]), mos=(0.0, 0.0, 0.0)),  # MOS -> (3, 3, 3): d = (1, 0, 2)
        sample(critique([4, 4, 4]), mos=(PROBIT_75,) * 3),  # MOS -> (4, 4, 4): d = 0
        sample(critique([1, 1, 1])),  # no MOS
        sample("no final assessment here", mos=(0.0, 0.0, 0.0)),  # unparsable
    ]
    l1 = MosScoreTerm("l1")
    assert l1(samples).tolist() == pytest.approx([1 - (1 / 4 + 0 + 2 / 4) / 3, 1.0, 0.0, 0.0])
    assert l1.applies(samples).tolist() == [True, True, False, True]
    gaussian = MosScoreTerm("gaussian", sigma=1.0)(samples)
    assert gaussian[0].item() == pytest.approx((math.exp(-0.5) + 1 + math.exp(-2)) / 3)
    laplace = MosScoreTerm("laplace", b=2.0)(samples)
    assert laplace[0].item() == pytest.approx((math.exp(-0.5) + 1 + math.exp(-1)) / 3)
    assert gaussian[1:].tolist() == laplace[1:].tolist() == [1.0, 0.0, 0.0]


def test_mos_reward_on_the_text_scale_and_its_config_errors():
    assert MosScoreTerm("l1", mos_scale="text")([sample(critique([4, 3, 5]), mos=(2, 2, 2))]).item() == 0.5
    with pytest.raises(ValueError, match="sigma"):
        MosScoreTerm("gaussian")
    with pytest.raises(ValueError, match="unknown MOS reward kind"):
        MosScoreTerm("l2")


def test_format_reward_requires_sections_and_scores():
    texts = [critique([3, 3, 3]), "[Final Assessment]\nVisual Quality: 3\nInstruction Alignment: 2\nContent Preservation: 1", "nothing"]
    samples = [sample(t) for t in texts]
    assert FormatTerm()(samples).tolist() == [1.0, 0.0, 0.0]
    assert FormatTerm("parsed")(samples).tolist() == [1.0, 1.0, 0.0]


def test_composite_sums_weighted_components_and_logs_means_only_where_they_apply():
    samples = [sample(critique([4, 3, 5]), mos=(0.0, 0.0, 0.0)), sample(critique([1, 1, 1])), sample("garbage")]
    result = CompositeReward([("mos", 2.0, MosScoreTerm("l1")), ("format", 0.5, FormatTerm())])(samples)
    assert result.total.tolist() == pytest.approx([2 * 0.75 + 0.5, 0.5, 0.0])
    assert result.components["mos"].mean == pytest.approx(0.75)  # over the one sample with MOS
    assert result.components["format"].mean == pytest.approx(2 / 3)
    assert result.components["format"].std == pytest.approx(math.sqrt(2 / 9))
    assert result.metrics()["reward_mos_mean"] == pytest.approx(0.75)


def test_re_reward_weights_the_scorers_three_scores(local_reward, image_pair_factory):
    source, edited = image_pair_factory()
    texts = [critique([4, 3, 5]), critique([1, 2, 1]) + " The edit is poor."]
    samples = [sample(t, source=source, edited=edited) for t in texts]
    weights = {"logicality": 0.25, "accuracy": 0.5, "usefulness": 0.25}
    rewards = ReRewardTerm(local_reward, weights)(samples)
    scores = local_reward.score([RewardItem(source, edited, "make the circle blue", t) for t in texts])
    expected = [0.25 * s.logicality + 0.5 * s.accuracy + 0.25 * s.usefulness for s in scores]
    torch.testing.assert_close(rewards, torch.tensor(expected), rtol=0, atol=1e-5)
    assert rewards[0] != rewards[1]  # different critiques, different rewards
    server_weights = ReRewardTerm(local_reward)(samples)
    torch.testing.assert_close(server_weights, torch.tensor([s.reward for s in scores]), rtol=0, atol=1e-5)


def test_re_reward_gives_blank_completions_the_batch_minimum(local_reward, image_pair_factory):
    source, edited = image_pair_factory()
    samples = [sample(t, source=source, edited=edited) for t in (critique([4, 3, 5]), "   ", critique([2, 2, 2]))]
    rewards = ReRewardTerm(local_reward)(samples)
    assert rewards[1] == min(rewards[0], rewards[2])


def test_an_item_the_scorer_refuses_gets_the_penalty_and_is_counted(local_reward, tmp_path, caplog):
    missing = sample(critique([3, 3, 3]), source=tmp_path / "gone.png", edited=tmp_path / "gone2.png")
    term = ReRewardTerm(local_reward, guard=ScoringGuard(refused_penalty=-7.0))
    assert term([missing]).tolist() == [-7.0] and term.refused_items == 1
    assert "gone.png" in caplog.text  # the refusal is logged with its reason
    composite = build_rewards([{"name": "re_reward", "weight": 1.0}], local_reward)
    composite([missing])
    assert composite.refused_items() == 1


def test_build_rewards_from_config(local_reward):
    composite = build_rewards(
        [
            {"name": "re_reward", "weight": 1.0, "weights": {"logicality": 0.25, "accuracy": 0.5, "usefulness": 0.25}},
            {"name": "mos_l1", "type": "mos", "weight": 0.5, "kind": "l1"},
            {"name": "format", "weight": 0.1, "require": "parsed"},
        ],
        local_reward,
    )
    assert [(n, w, type(r).__name__) for n, w, r in composite.components] == [
        ("re_reward", 1.0, "ReRewardTerm"), ("mos_l1", 0.5, "MosScoreTerm"), ("format", 0.1, "FormatTerm")
    ]
    assert composite.components[0][2].weights["accuracy"] == 0.5


@pytest.mark.parametrize(
    "config,message",
    [
        ([{"name": "re_reward", "weight": 1.0}], "needs a reward scorer"),
        ([{"name": "bleu", "weight": 1.0}], "unknown type 'bleu'"),
        ([{"name": "format"}], "needs a `name` and a `weight`"),
        ([{"name": "m", "type": "mos", "weight": 1.0, "sigmaa": 1.0}], "sigmaa"),
        ([{"name": "format", "weight": 1.0}, {"name": "format", "weight": 2.0}], "unique"),
    ],
)
def test_build_rewards_rejects_bad_config(config, message):
    with pytest.raises(ValueError, match=message):
        build_rewards(config, scorer=None)


def comparison_sample(scores, comparison, role):
    text = critique(scores) if scores is not None else "no scores here"
    return RewardSample("s.png", "e.png", "make it blue", text, comparison=(comparison, role))


def test_win_ratio_term_pairs_each_trace_with_the_other_side_of_its_comparison():
    samples = [
        comparison_sample([4, 4, 4], "c1", "preferred"), comparison_sample([2, 2, 2], "c1", "preferred"),
        comparison_sample([3, 3, 3], "c1", "rejected"), comparison_sample(None, "c1", "rejected"),
        comparison_sample([1, 1, 1], "c2", "preferred"), comparison_sample([5, 5, 5], "c2", "rejected"),
        sample(critique([3, 3, 3])),  # not part of a comparison
    ]
    term = WinRatioTerm()
    # c1: tau_w = [4, 2], tau_l = [3, unparsed]; c2: tau_w = [1], tau_l = [5]
    assert term(samples).tolist() == pytest.approx([0.5, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0])
    assert term.applies(samples).tolist() == [True] * 6 + [False]
    with pytest.raises(ValueError, match="both sides"):
        term(samples[:2])
    composite = build_rewards([{"name": "win_ratio", "weight": 1.0}, {"name": "format", "weight": 0.5}])
    assert composite(samples).total[0].item() == pytest.approx(0.5 + 0.5)


@pytest.mark.parametrize(("error", "l1", "gaussian", "laplace"), [
    (0.0, 1.0, 1.0, 1.0),
    (0.5, 0.525, 0.05 ** 0.25, 0.05 ** 0.5),
    (1.0, 0.05, 0.05, 0.05),  # 0.05 at a one-point difference, for every kernel
    (2.5, 0.05, 0.05, 0.05),  # and floored there
])
def test_ie_critic_r1_kernels_match_their_published_constants(error, l1, gaussian, laplace):
    pred, truth = torch.tensor([1.0 + error], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)
    for kind, expected in (("l1", l1), ("gaussian", gaussian), ("laplace", laplace)):
        assert ie_critic_r1_accuracy(pred, truth, kind).item() == pytest.approx(expected, abs=1e-9), kind


def test_ie_critic_r1_gives_nothing_outside_the_score_range():
    out = ie_critic_r1_accuracy(torch.tensor([5.5, 0.5, float("nan"), 5.0]), torch.tensor([5.0, 1.0, 3.0, 5.0]))
    assert out.tolist() == [0.0, 0.0, 0.0, 1.0]


def test_mos_term_with_ie_critic_kernels_scores_the_overall():
    # parsed (4, 3, 5): overall 4.0; MOS on the text scale 3.5 each -> |e| = 0.5 -> l1 0.525
    samples = [sample(critique([4, 3, 5]), mos=(3.5, 3.5, 3.5))]
    assert MosScoreTerm("ie_critic_l1", mos_scale="text")(samples).item() == pytest.approx(0.525)


def their_compute_score_l1(predict: str, ground_truth: float, format_weight: float = 1.0) -> float:
    """IE-Critic-R1's `compute_score_l1(strict_format=False)` written from its published definition
    (examples/score_function/ie_critic_r1.py): regex answer (else the whole text), float, 0 outside
    [1, 5], max(0.05, 1 - 0.95 |p - g|); + format_weight x fullmatch of think/answer."""
    import re

    fmt = 1.0 if re.fullmatch(r"<think>.*?</think>\s*<answer>.*?</answer>", predict, re.DOTALL) else 0.0
    match = re.search(r"<answer>(.*?)</answer>", predict)
    try:
        p = float((match.group(1) if match else predict).strip())
    except ValueError:
        return format_weight * fmt
    accuracy = 0.0 if not (1.0 <= p <= 5.0) else max(0.05, 1 - 0.95 * abs(p - ground_truth))
    return accuracy + format_weight * fmt


@pytest.mark.parametrize(
    "response",
    [
        "<think>sharp, follows the edit</think><answer>3.50</answer>",
        "<think>bad</think>\n<answer>1.2</answer>",
        "<think>x</think><answer>5.5</answer>",  # out of range: format only
        "<think>x</think><answer>n/a</answer>",
        "3.9",  # untagged: accuracy, no format
        "<think>x</think><answer>2</answer> and more",  # answer counts, format fails
        "<think>never closed <answer>4",  # unclosed: their regex reads nothing -> float fails -> 0
    ],
)
def test_think_answer_l1_plus_format_matches_ie_critic_r1s_compute_score(response):
    truth = 3.8
    term = build_rewards([{"name": "accuracy", "type": "mos", "weight": 1.0, "kind": "ie_critic_l1", "mos_scale": "text"},
                          {"name": "format", "weight": 1.0}], None)
    record = RewardSample("s.png", "e.png", "make it red", response, mos_overall=truth, critique_format="think_answer")
    ours = term([record]).total.item()
    if response.endswith("<answer>4"):  # the one documented difference: we read an unclosed tag as their eval does
        assert ours == pytest.approx(max(0.05, 1 - 0.95 * 0.2))
        assert their_compute_score_l1(response, truth) == 0.0
    else:
        assert ours == pytest.approx(their_compute_score_l1(response, truth), abs=1e-6)


def test_single_mos_wins_over_the_mean_of_three_and_the_sample_applies_without_mos():
    single = RewardSample("s.png", "e.png", "x", "<think>a</think><answer>4</answer>", mos_overall=4.0,
                          critique_format="think_answer")
    both = RewardSample("s.png", "e.png", "x", "<think>a</think><answer>4</answer>", mos=(2.0, 2.0, 2.0),
                        mos_overall=4.0, critique_format="think_answer")
    neither = RewardSample("s.png", "e.png", "x", "<think>a</think><answer>4</answer>", critique_format="think_answer")
    term = MosScoreTerm("ie_critic_l1", mos_scale="text")
    assert term([single, both, neither]).tolist() == [1.0, 1.0, 0.0]
    assert term.applies([single, both, neither]).tolist() == [True, True, False]
    # The per-dimension kinds need the sections format's three scores: a think_answer answer earns nothing.
    assert MosScoreTerm("l1", mos_scale="text")([both]).item() == 0.0
    assert FormatTerm()([single]).item() == 1.0
