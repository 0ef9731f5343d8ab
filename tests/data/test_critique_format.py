"""Critique structure parser: reads every form we write, never raises on anything else."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from ie_eval.data import critique_format
from ie_eval.data.critique_format import (
    format_failure_rate,
    parse_critique,
    parse_final_assessment,
)
from ie_eval.data.prompts import FINAL_ASSESSMENT, format_critique
from ie_eval.data.records import MOS_DIMS
from ie_eval.data.synth import critiques as synth_critiques

OBSERVATIONS = {
    "visual_quality": "No new artifacts.",
    "instruction_alignment": "The star is gone.",
    "content_preservation": "The sky turned gray.",
}
FRAGMENTS = [
    "[Visual Quality]", "[Instruction Alignment]", "[Content Preservation]", FINAL_ASSESSMENT, "[Final",
    "Visual Quality: ", "Instruction Alignment:", "content preservation: ", "4", "5/5", "0", "9", "3.5", "1e9",
    "nan", "\n", "; ", '{"visual quality": ', '"', "}", "Assessment]", "[", "]", ":", "é", "\x00",
]


def test_parser_reads_the_canonical_form_with_observations():
    parsed = parse_critique(format_critique(OBSERVATIONS, (4, 2, 5)))
    assert parsed.scores == (4, 2, 5)
    assert parsed.observations == OBSERVATIONS
    assert parsed.structured


def test_parser_reads_the_synthetic_one_line_and_json_forms():
    assert parse_final_assessment("Fine.\n[Final Assessment] visual quality: 3/5; instruction alignment: 1/5; content preservation: 5/5") == (3, 1, 5)
    json_form = 'Ok.\n[Final Assessment] {"visual quality": 2, "instruction alignment": 4, "content preservation": 3}'
    assert parse_final_assessment(json_form) == (2, 4, 3)
    assert not parse_critique(json_form).structured  # parsed, but without per-dimension sections


def test_the_last_final_assessment_wins_and_out_of_range_scores_fail():
    text = format_critique(OBSERVATIONS, (1, 1, 1)) + "\n" + format_critique(OBSERVATIONS, (5, 4, 3))
    assert parse_final_assessment(text) == (5, 4, 3)
    assert parse_final_assessment(format_critique(OBSERVATIONS, (4, 2, 5)).replace(": 2", ": 7")) is None
    assert parse_final_assessment("no verdict here") is None


def test_format_failure_rate_counts_unparsable_texts():
    good = format_critique(OBSERVATIONS, (4, 2, 5))
    assert format_failure_rate([good, good, "garbage", good[:-25]]) == 0.5
    assert math.isnan(format_failure_rate([]))


def test_synth_uses_the_shared_parser():
    assert synth_critiques.parse_final_assessment is critique_format.parse_final_assessment


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parser_never_raises_on_arbitrary_text(text):
    parsed = parse_critique(text)
    assert parsed.scores is None or all(1 <= s <= 5 for s in parsed.scores)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40))
def test_parser_never_raises_on_scrambled_format_fragments(fragments):
    parsed = parse_critique("".join(fragments))
    assert parsed.scores is None or all(1 <= s <= 5 for s in parsed.scores)
    assert set(parsed.observations) <= set(MOS_DIMS)


observation_text = st.text(alphabet=st.sampled_from("abcdefghij klmnop.,;-"), min_size=1, max_size=40).filter(str.strip)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries({dim: observation_text for dim in MOS_DIMS}),
    st.tuples(*[st.integers(1, 5)] * 3),
)
def test_format_then_parse_round_trips(observations, scores):
    parsed = parse_critique(format_critique(observations, scores))
    assert parsed.scores == scores
    assert parsed.observations == {dim: text.strip() for dim, text in observations.items()}
