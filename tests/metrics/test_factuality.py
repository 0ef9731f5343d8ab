"""Critique factuality against the synthetic facts: true / false / unverifiable claims."""

from __future__ import annotations

import json

import pytest

from ie_eval.data.phased import structured_critique
from ie_eval.data.prompts import format_critique
from ie_eval.data.readers import read_manifests
from ie_eval.metrics.factuality import (
    FactualityCounts,
    claim_template,
    critique_claims,
    critique_factuality,
    known_templates,
)

FACTS = {
    "target": {"text": "the star is now red", "ok": True},
    "others": {"text": "the rest of the content is unchanged", "ok": True},
    "quality": {"text": "there is visible grain noise", "ok": False},
}
TEMPLATES = known_templates([f["text"] for f in FACTS.values()])


def critique(vq: str, ia: str, cp: str) -> str:
    return format_critique(
        {"visual_quality": vq, "instruction_alignment": ia, "content_preservation": cp}, (3, 4, 5)
    )


def test_stated_facts_are_true_and_other_facts_of_the_same_shape_are_false() -> None:
    text = critique("There is visible grain noise.", "The star is now blue.", "The rest of the content is unchanged.")
    assert critique_factuality(text, FACTS, TEMPLATES) == FactualityCounts(true=2, false=1, unverifiable=0)


def test_vague_verdicts_count_by_the_facts_good_or_bad_flag() -> None:
    text = critique("The image looks clean.", "The requested change seems to be there.", "No specific observation.")
    assert critique_factuality(text, FACTS, TEMPLATES) == FactualityCounts(true=1, false=1, unverifiable=0)


def test_claims_of_no_known_shape_are_unverifiable_and_left_out_of_the_share() -> None:
    text = critique("The sky looks dramatic.", "The star is now red.", "No specific observation.")
    counts = critique_factuality(text, FACTS, TEMPLATES)
    assert counts == FactualityCounts(true=1, false=0, unverifiable=1)
    assert counts.factuality == 1.0 and counts.unverifiable_share == 0.5


def test_templates_abstract_world_words_but_keep_the_verb() -> None:
    assert claim_template("The sky blue star got larger instead.") == "the <color> <shape> got larger instead"
    assert claim_template("An orange circle was added in the top left corner") == "a <color> <shape> was added <place>"
    assert claim_template("the star got smaller instead") != claim_template("the star got larger instead")


def test_an_unsectioned_critique_is_read_before_its_final_assessment() -> None:
    text = "The star is now red; there is visible grain noise.\n[Final Assessment] visual quality: 2/5"
    assert critique_claims(text) == ["the star is now red", "there is visible grain noise"]


def test_empty_or_unreadable_critique_has_no_factuality() -> None:
    counts = critique_factuality("", FACTS, TEMPLATES)
    assert counts == FactualityCounts() and counts.factuality != counts.factuality  # NaN


@pytest.mark.parametrize("limit", [400])
def test_agrees_with_the_benchmarks_own_claim_truth(synth_manifest, limit: int) -> None:
    """Every structured benchmark critique: the metric's true/false counts equal the construction's."""
    pairs = {row["pair_id"]: row["meta"]["facts"] for row in map(json.loads, (synth_manifest.parent / "pairs.jsonl").read_text().splitlines())}
    templates = known_templates(f["text"] for facts in pairs.values() for f in facts.values())
    records = read_manifests([synth_manifest]).records[:limit]
    falses = 0
    for record in records:
        counts = critique_factuality(structured_critique(record), pairs[record.pair_id], templates)
        holds = [c["holds"] for c in record.meta["claims"]]
        assert (counts.true, counts.false, counts.unverifiable) == (sum(holds), len(holds) - sum(holds), 0)
        falses += counts.false
    assert falses > 0


def test_the_metric_keeps_counting_after_a_reset_under_inference_mode() -> None:
    """`ie-eval grpo` validates (inference mode) before fitting, then validates again inside fit."""
    import torch

    from ie_eval.metrics.factuality import Factuality

    metric = Factuality(templates=TEMPLATES)
    text = critique("There is visible grain noise.", "The star is now blue.", "The rest of the content is unchanged.")
    with torch.inference_mode():
        metric.update([text], [FACTS])
        metric.compute()
        metric.reset()
    metric.update([text], [FACTS])
    assert float(metric.compute()["factuality"]) == pytest.approx(2 / 3)
