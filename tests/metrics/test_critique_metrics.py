"""CritiqueMetrics: format rate, parsed-text correlations on parsed rows only, ROUGE-1 F by hand."""

import pytest
import torch

from ie_eval.data.critique_format import parse_critique
from ie_eval.metrics.critique import CritiqueMetrics


def final(scores):
    vq, ia, cp = scores
    return f"[Final Assessment]\nVisual Quality: {vq}\nInstruction Alignment: {ia}\nContent Preservation: {cp}"


def test_rouge1_f_matches_a_hand_count():
    metrics = CritiqueMetrics()
    texts = ["The cat sat."]
    metrics.update_texts([parse_critique(t) for t in texts], torch.zeros(1, 3), torch.tensor([False]), texts, ["the cat is on the mat"])
    # unigram overlap {the, cat} = 2: P = 2/3, R = 2/6, F = 2PR / (P + R) = 4/9.
    assert metrics.compute()["rouge1"].item() == pytest.approx(4 / 9, abs=1e-4)


def test_text_correlations_use_parsed_rows_and_format_rate_counts_the_rest():
    metrics = CritiqueMetrics()
    texts = [final((1, 2, 3)), "no verdict", final((2, 3, 4)), final((3, 5, 5)), final((4, 4, 1))]
    mos = torch.tensor([[0.1, 0.2, 0.3], [9.0, 9.0, 9.0], [0.2, 0.3, 0.4], [0.3, 0.5, 0.5], [0.4, 0.4, 0.1]])
    metrics.update_texts([parse_critique(t) for t in texts], mos, torch.ones(5, dtype=torch.bool))
    metrics.update_scores(mos * 2, mos, torch.ones(5, dtype=torch.bool))
    out = metrics.compute()
    assert out["format_rate"].item() == pytest.approx(0.8)
    assert out["text_mean_srcc"].item() == pytest.approx(1.0)  # the unparsed row's outlier MOS is left out
    assert out["mean_plcc"].item() == pytest.approx(1.0)
    assert "rouge1" not in out  # no references given
    metrics.reset()
    assert metrics.compute() == {}


def test_think_answer_critiques_give_an_overall_correlation_and_no_per_dim_one():
    from scipy import stats

    answers = [2.0, None, 3.5, 3.0, 4.5]
    texts = [f"<think>ok</think><answer>{a}</answer>" if a is not None else "<think>no score</think>" for a in answers]
    mos = torch.tensor([[0.1, 0.2, 0.3], [9.0, 9.0, 9.0], [0.9, 0.3, 0.4], [0.3, 0.5, 0.5], [0.4, 0.4, 0.1]])
    metrics = CritiqueMetrics()
    metrics.update_texts([parse_critique(t, "think_answer") for t in texts], mos, torch.ones(5, dtype=torch.bool))
    out = metrics.compute()
    assert out["format_rate"].item() == pytest.approx(0.8)
    assert "text_mean_srcc" not in out  # no per-dimension scores in this format
    kept = [0, 2, 3, 4]
    expected = stats.spearmanr([answers[i] for i in kept], mos[kept].mean(dim=1).numpy()).statistic
    assert out["text_overall_srcc"].item() == pytest.approx(expected)
