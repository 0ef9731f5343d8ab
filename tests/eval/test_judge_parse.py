"""The zero-shot judge's JSON answer parser and the evaluation's parse-failure accounting."""

import numpy as np
import pytest
from scipy import stats

from ie_eval.data.prompts import judge_messages
from ie_eval.data.records import MOS_DIMS
from ie_eval.eval.evaluate import Prediction, pointwise_results
from ie_eval.eval.judge import json_objects, parse_judge_scores

DIMS = list(MOS_DIMS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('The edit is clean.\n{"visual_quality": 4, "instruction_alignment": 3, "content_preservation": 5}', [4, 3, 5]),
        ('```json\n{"Visual Quality": "4", "instruction-alignment": "3/5", "content_preservation": 2.5,}\n```',
         [4, 3, 2.5]),
        ("{'visual_quality': 1, 'instruction_alignment': 2, 'content_preservation': 3}", [1, 2, 3]),
        ('{"scores": {"visual_quality": 5, "instruction_alignment": 5, "content_preservation": 1}}', [5, 5, 1]),
        # Two objects: the last complete one is the answer.
        ('Example: {"visual_quality": 1, "instruction_alignment": 1, "content_preservation": 1} '
         'Answer: {"visual_quality": 2, "instruction_alignment": 3, "content_preservation": 4}', [2, 3, 4]),
        ('{"visual_quality": 2, "instruction_alignment": 3, "content_preservation": 4} then {"note": "a } b"}',
         [2, 3, 4]),
    ],
)
def test_parse_judge_scores_reads_messy_answers(text, expected):
    assert parse_judge_scores(text, DIMS) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I think it is a 4.",
        '{"visual_quality": 4, "instruction_alignment": 3}',  # a dim missing
        '{"visual_quality": 4, "instruction_alignment": 3, "content_preservation": 9}',  # off the 1-5 scale
        '{"visual_quality": "good", "instruction_alignment": 3, "content_preservation": 4}',
        '{"visual_quality": true, "instruction_alignment": 3, "content_preservation": 4}',
        '{"visual_quality": 4, "instruction_alignment": 3, "content_preservation": 4',  # unclosed
    ],
)
def test_parse_judge_scores_rejects_what_it_cannot_read(text):
    assert parse_judge_scores(text, DIMS) is None


def test_json_objects_ignores_braces_inside_strings():
    assert json_objects('x {"a": "}{\\"}"} y {"b": 1}') == ['{"a": "}{\\"}"}', '{"b": 1}']


def test_judge_prompt_asks_for_reasoning_then_json_with_the_dims():
    text = judge_messages("add a hat", ["logicality", "accuracy"], critique="Looks fine.")[0]["content"][-1]["text"]
    assert "reason step by step" in text and '{"logicality": <score>, "accuracy": <score>}' in text
    assert "Candidate critique:\nLooks fine." in text


def test_unparsed_items_are_excluded_from_correlations_and_counted(edit_record_factory):
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(8, 3))
    records = [edit_record_factory(f"p{i}", mos=tuple(truth[i]), task_type="add") for i in range(8)]
    preds = [list(truth[i] + rng.normal(size=3)) if i % 4 else None for i in range(8)]  # items 0 and 4 unparsed
    out = pointwise_results([Prediction(r, p) for r, p in zip(records, preds, strict=True)], DIMS, 50, 0)
    assert (out["n_items"], out["n_scored"], out["parse_failures"]) == (8, 6, 2)
    assert out["parse_failure_rate"] == pytest.approx(0.25)
    kept = [i for i in range(8) if preds[i] is not None]
    expected = stats.spearmanr([preds[i][1] for i in kept], truth[kept, 1]).statistic
    assert out["metrics"]["instruction_alignment"]["srcc"]["value"] == pytest.approx(expected)
    assert out["per_task_srcc"]["add"]["n"] == 6


def test_all_unparsed_gives_counts_and_no_correlations(edit_record_factory):
    records = [edit_record_factory(f"p{i}", mos=(0.0, 1.0, float(i))) for i in range(3)]
    out = pointwise_results([Prediction(r, None, "garbage") for r in records], DIMS, 10, 0)
    assert out["metrics"] is None and out["parse_failure_rate"] == 1.0 and "correlations need" in out["note"]
