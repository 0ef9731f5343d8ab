"""rm: / critic: / critic-cot: scorers load a saved tiny model and agree with its own forward pass."""

import pytest
import torch

from ie_eval.data.collate import EditCollator
from ie_eval.data.critique_format import parse_critique
from ie_eval.eval.benchmarks import limit_benchmark, load_benchmark
from ie_eval.eval.evaluate import evaluate
from ie_eval.eval.scorers import ScorerOptions, build_scorer
from ie_eval.models.critic import CriticModel
from ie_eval.models.heads import HeadConfig
from ie_eval.models.reward_model import RewardModel

OPTIONS = ScorerOptions(batch_size=2, max_new_tokens=4, max_pixels=4096)


@pytest.fixture(scope="module")
def bench(synth_manifest):
    return load_benchmark(f"synth:{synth_manifest.parent}")


def test_rm_scorer_matches_the_saved_model_and_skips_the_pairwise_view(tmp_path, bench):
    model = RewardModel.build("tiny-qwen3-vl", head=HeadConfig(hidden_size=16, dropout=0.0)).eval()
    model.save_pretrained(tmp_path / "rm")
    scorer = build_scorer(f"rm:{tmp_path / 'rm'}", OPTIONS)
    assert scorer.spec == f"rm:{tmp_path / 'rm'}" and scorer.needs_critique
    records = bench.pointwise(scorer.dims)[:4]
    got = torch.tensor(scorer.score(records).scores)
    with torch.no_grad():
        expected = model(EditCollator(model.processor, task="reward", mode="score", max_pixels=4096)(records))
    assert torch.allclose(got, expected, atol=1e-5)
    results, _ = evaluate(scorer, limit_benchmark(bench, 4), n_resamples=20)
    assert results["pointwise"]["n_items"] == 4 and results["preference"] is None  # groups need no critique
    assert set(results["pointwise"]["metrics"]) == {"logicality", "accuracy", "usefulness", "mean"}


def test_critic_scorers_score_only_and_cot(tmp_path, bench):
    model = CriticModel.build("tiny-qwen3-vl", head=HeadConfig(hidden_size=16, dropout=0.0)).eval()
    model.save_pretrained(tmp_path / "critic")
    records = bench.pointwise(("visual_quality",))[:3]
    head = build_scorer(f"critic:{tmp_path / 'critic'}", OPTIONS).score(records)
    with torch.no_grad():
        expected = model(EditCollator(model.processor, task="critic", mode="score", max_pixels=4096)(records))
    assert torch.allclose(torch.tensor(head.scores), expected, atol=1e-5)
    cot = build_scorer(f"critic-cot:{tmp_path / 'critic'}", OPTIONS).score(records)
    assert len(cot.texts) == 3
    assert [s is None for s in cot.scores] == [not parse_critique(t).parsed for t in cot.texts]
    # CoT mode keeps the head's scores from the same (left-padded) prefill.
    assert torch.allclose(torch.tensor(cot.info["head_scores"]), expected, atol=1e-4)


def test_bad_specs_name_the_choices():
    with pytest.raises(ValueError, match="judge:"):
        build_scorer("clip")
    with pytest.raises(ValueError, match="KIND:PATH"):
        load_benchmark("imagenhub:x.csv")


def as_conversation(record, with_critique):
    """The Qwen-VL chat form of a record: source, edited, instruction (+ the critique as the assistant turn)."""
    messages = [{"role": "user", "content": [
        {"type": "image", "image": str(record.source_image)},
        {"type": "image", "image": f"file://{record.edited_image}"},
        {"type": "text", "text": record.instruction},
    ]}]
    if with_critique:
        messages.append({"role": "assistant", "content": record.critique})
    return messages


@pytest.mark.parametrize("kind", ["rm", "critic"])
def test_score_messages_matches_scoring_the_same_records(tmp_path, bench, kind):
    model_class = RewardModel if kind == "rm" else CriticModel
    model_class.build("tiny-qwen3-vl", head=HeadConfig(hidden_size=16, dropout=0.0)).save_pretrained(tmp_path / kind)
    scorer = build_scorer(f"{kind}:{tmp_path / kind}", OPTIONS)
    records = bench.pointwise(scorer.dims)[:3]
    by_records = scorer.score(records).scores
    by_messages = scorer.score_messages([as_conversation(r, with_critique=kind == "rm") for r in records]).scores
    assert torch.allclose(torch.tensor(by_messages), torch.tensor(by_records), atol=1e-5)
    if kind == "rm":  # RE-Reward scores a critique: a conversation without one is refused, naming it
        with pytest.raises(ValueError, match=r"conversations\.0: no critique"):
            scorer.score_messages([as_conversation(records[0], with_critique=False)])
