"""A single-score (think_answer) critic in `ie-eval eval`: one `overall` dim, judged against the overall MOS."""

import json

import pytest

from ie_eval.data.critique_format import parse_critique
from ie_eval.data.records import overall_mos
from ie_eval.eval.benchmarks import load_benchmark
from ie_eval.eval.evaluate import Prediction
from ie_eval.models.adapters import AdapterConfig
from ie_eval.models.critic import CriticModel


def test_overall_truth_is_the_single_mos_else_the_mean_of_three(edit_record_factory):
    three = edit_record_factory("p3", mos=(1.0, 2.0, 6.0))
    single = edit_record_factory("p1", meta={"mos_overall": 3.25}, mos=(1.0, 1.0, 1.0))
    assert Prediction(three, [3.0]).truth(("overall",)) == [3.0]
    assert Prediction(single, [3.0]).truth(("overall",)) == [3.25]
    assert Prediction(edit_record_factory("p0"), None).truth(("overall",)) is None


def test_think_answer_critic_is_scored_on_the_overall_mos(tmp_path, synth_bench, eval_cli):
    model = CriticModel.build("tiny-qwen3-vl", critique_format="think_answer", adapter=AdapterConfig(kind="full"))
    model.attach_adapter(AdapterConfig(kind="full"))
    model.eval().save_pretrained(tmp_path / "critic")
    out = tmp_path / "eval"
    eval_cli(f"critic-cot:{tmp_path / 'critic'}", synth_bench, out, "--limit", "4", "--max-new-tokens", "6",
             "--max-pixels", "4096")
    results = json.loads((out / "results.json").read_text())
    assert results["scorer"]["dims"] == ["overall"]
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    pointwise = [r for r in rows if r["pointwise"]]
    bench = {r.sample_id: r for r in load_benchmark(synth_bench).records}
    assert len(pointwise) == results["pointwise"]["n_items"] == 4
    for row in pointwise:
        assert row["truth"] == {"overall": pytest.approx(overall_mos(bench[row["sample_id"]]))}
        parsed = parse_critique(row["text"], "think_answer")
        assert row["pred"] == ({"overall": parsed.overall} if parsed.parsed else None)  # the answer, or a failure
    assert results["pointwise"]["parse_failures"] == sum(r["pred"] is None for r in pointwise)
    assert results["peer"]["pointwise"]["ie_critic_r1"]["parse_failures"] == results["pointwise"]["parse_failures"]


def test_groups_of_a_single_score_scorer_are_judged_on_the_overall_ranks_only(synth_bench):
    from ie_eval.eval.evaluate import preference_results
    from ie_eval.metrics.preference import TiePolicy

    bench = load_benchmark(synth_bench)
    by_id = {r.sample_id: Prediction(r, [overall_mos(r)]) for g in bench.groups for r in g.records}
    out = preference_results(bench, by_id, ("overall",), TiePolicy())
    assert out["per_dim"] == {}  # the synthetic groups have per-dim ranks for MOS dims, none for "overall"
    assert out["overall"]["pairwise_accuracy"] == pytest.approx(1.0)  # the truth itself orders every group
