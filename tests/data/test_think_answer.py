"""IE-Critic-R1's <think>/<answer> critique format: parser, format check, SFT target, prompt and collation."""

import math

import pytest

from ie_eval.data.collate import IGNORE_INDEX, CollateError, EditCollator
from ie_eval.data.critique_format import format_failure_rate, parse_critique, sft_target
from ie_eval.data.prompts import critic_prompt, format_critique
from ie_eval.data.think_answer import answer_score, format_think_answer, think_text, well_formed
from ie_eval.models.tiny_presets import get_preset, tiny_processor

OBSERVATIONS = {
    "visual_quality": "The edited image is sharp.",
    "instruction_alignment": "The circle is now blue.",
    "content_preservation": "The background is preserved.",
}
SECTIONS = format_critique(OBSERVATIONS, (4, 5, 3.5))


@pytest.mark.parametrize(
    ("response", "score"),
    [
        ("<think>ok</think><answer>3.25</answer>", 3.25),
        ("<think>ok</think>\n<answer> 4 </answer>", 4.0),
        ("<think>ok</think><answer>2.5", 2.5),  # unclosed: everything after <answer>
        ("3.75", 3.75),  # untagged: the whole response
        ("3.75.", 3.75),  # a closing full stop is not part of the number
        ("<answer>good</answer>", None),
        ("<think>no answer</think>", None),
        ("<answer>nan</answer>", None),
        ("<answer>7</answer>", 7.0),  # out of range is kept: IE-Critic-R1's eval keeps it, its reward gives 0
        ("", None),
    ],
)
def test_answer_score_follows_ie_critic_r1s_parser(response, score):
    assert answer_score(response) == score


@pytest.mark.parametrize(
    ("response", "ok"),
    [
        ("<think>a</think><answer>3</answer>", True),
        ("<think>a\nb</think> \n <answer>x</answer>", True),  # DOTALL; the answer need not be a number
        (" <think>a</think><answer>3</answer>", False),  # fullmatch on the raw response
        ("<think>a</think><answer>3</answer> trailing", False),
        ("<answer>3</answer>", False),
        ("<think>a</think>", False),
    ],
)
def test_well_formed_is_a_full_match_of_their_pattern(response, ok):
    assert well_formed(response) is ok


def test_parsed_think_answer_has_one_overall_score_and_no_per_dim_scores():
    parsed = parse_critique("<think>It looks fine.</think><answer>3.40</answer>", "think_answer")
    assert parsed.scores is None and parsed.overall == pytest.approx(3.4)
    assert parsed.parsed and parsed.structured
    loose = parse_critique("Looks fine. <answer>2</answer>", "think_answer")
    assert loose.parsed and not loose.structured and loose.overall == 2.0
    # The sections parser never reads a think_answer score, and vice versa.
    assert not parse_critique("<think>x</think><answer>3</answer>").parsed
    sections = parse_critique(SECTIONS)
    assert sections.overall == pytest.approx((4 + 5 + 3.5) / 3) and sections.critique_format == "sections"


def test_sft_target_keeps_the_reasoning_and_answers_the_mean_score():
    target = sft_target(SECTIONS, "think_answer")
    parsed = parse_critique(target, "think_answer")
    assert parsed.well_formed and parsed.overall == pytest.approx(round((4 + 5 + 3.5) / 3, 2))
    assert target.endswith("<answer>4.17</answer>")
    # The reasoning is the critique's observations, sections intact (factuality reads them there).
    assert parsed.observations == OBSERVATIONS
    assert "[Final Assessment]" not in think_text(target)
    assert sft_target(SECTIONS, "sections") == SECTIONS
    assert sft_target("no final assessment here", "think_answer") is None
    with pytest.raises(ValueError, match="critique_format"):
        sft_target(SECTIONS, "json")


def test_format_think_answer_rejects_empty_reasoning_and_non_finite_scores():
    with pytest.raises(ValueError, match="empty reasoning"):
        format_think_answer("  ", 3.0)
    with pytest.raises(ValueError, match="finite"):
        format_think_answer("x", math.inf)


def test_format_failure_rate_reads_the_given_format():
    texts = ["<think>a</think><answer>3</answer>", "<think>a</think><answer>?</answer>", SECTIONS]
    assert format_failure_rate(texts, "think_answer") == pytest.approx(2 / 3)  # SECTIONS has no answer number
    assert format_failure_rate(texts) == pytest.approx(2 / 3)


def test_think_answer_prompt_asks_for_their_tags_and_one_overall_score():
    text = critic_prompt("make the sky red", "think_answer")[0]["content"][-1]["text"]
    assert "<think>" in text and "<answer>" in text and "overall" in text and "two decimal" in text
    assert "[Final Assessment]" in critic_prompt("make the sky red")[0]["content"][-1]["text"]
    with pytest.raises(ValueError, match="critique_format"):
        critic_prompt("x", "json")


def test_collator_supervises_the_think_answer_target_behind_their_prompt(edit_record_factory):
    processor = tiny_processor(get_preset("tiny-qwen3.5"))
    record = edit_record_factory("pair-a", critique=SECTIONS, critique_id="c1", mos=(1.0, 2.0, 3.0))
    collator = EditCollator(processor, task="critic", mode="train", critique_format="think_answer", max_pixels=64 * 64)
    batch = collator([record])
    supervised = batch["labels"][0] != IGNORE_INDEX
    assert processor.tokenizer.decode(batch["labels"][0][supervised]).startswith(sft_target(SECTIONS, "think_answer"))
    prompt = processor.tokenizer.decode(batch["input_ids"][0][batch["prompt_mask"][0]])
    assert "<answer> answer here </answer>" in prompt and "[Final Assessment]" not in prompt
    broken = edit_record_factory("pair-b", critique="just prose, no scores", critique_id="c1")
    with pytest.raises(CollateError, match="pair-b#c1.*think_answer"):
        collator([broken])
    with pytest.raises(ValueError, match="critique_format"):
        EditCollator(processor, task="critic", critique_format="json")
