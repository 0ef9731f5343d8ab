"""Per-prompt seeded rollouts: a prompt's samples do not depend on its batch, they follow the warped
distribution, and their recorded log-probs are the teacher-forced ones."""

import math

import pytest
import torch
from test_rollout import prompt_batch, sharp_critic

from ie_eval.rl.rollout import SamplingConfig, completion_logprobs
from ie_eval.rl.rollout.hf import HFRolloutEngine
from ie_eval.rl.rollout.seeded import SeededSampler, prompt_seeds, row_uniforms


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def three_records(edit_record_factory):
    return [
        edit_record_factory("a", instruction="make the circle blue", source_size=(96, 64), edited_size=(96, 64)),
        edit_record_factory("b", instruction="add a small green square in the top left corner of the picture",
                            source_size=(48, 48), edited_size=(48, 48)),
        edit_record_factory("c", instruction="remove the red triangle", source_size=(64, 64), edited_size=(64, 64)),
    ]


def completions(rollouts, group_size):
    """{prompt row: G token lists (stop token included, padding dropped)}."""
    rows = [row[mask.bool()].tolist() for row, mask in zip(rollouts.completion_ids, rollouts.completion_mask,
                                                              strict=True)]
    return [rows[p * group_size : (p + 1) * group_size] for p in range(len(rows) // group_size)]


def test_prompt_seeds_depend_on_seed_step_and_prompt_only():
    seeds = prompt_seeds(7, 3, ["a", "b", "a"])
    assert seeds == prompt_seeds(7, 3, ["a", "b", "a"])
    assert seeds[0] != seeds[2]  # a prompt drawn twice in one batch gets a second seed
    assert prompt_seeds(7, 3, ["b"]) == [seeds[1]]  # its position in the batch does not matter
    assert len({seeds[0], *prompt_seeds(8, 3, ["a"]), *prompt_seeds(7, 4, ["a"])}) == 3
    assert all(0 <= s < 2**63 for s in seeds)


@pytest.mark.parametrize("preset", ["tiny-qwen3-vl", "tiny-qwen3.5"])
def test_a_prompts_samples_are_the_same_in_any_batch(preset, three_records):
    model = sharp_critic(preset)
    engine = HFRolloutEngine(model)
    sampling = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=8)
    keys = [r.pair_id for r in three_records]
    torch.manual_seed(0)
    together = completions(engine.generate(prompt_batch(model, three_records), 4, sampling,
                                           seeds=prompt_seeds(5, 0, keys)), 4)
    torch.manual_seed(123)  # the global generator plays no part
    apart = completions(engine.generate(prompt_batch(model, three_records[2:0:-1]), 4, sampling,
                                        seeds=prompt_seeds(5, 0, keys[2:0:-1])), 4)
    assert apart == [together[2], together[1]]
    assert all(len({tuple(row) for row in group}) > 1 for group in together)  # G different samples
    other_step = completions(engine.generate(prompt_batch(model, three_records), 4, sampling,
                                             seeds=prompt_seeds(5, 1, keys)), 4)
    assert other_step != together


def test_seeded_log_probs_are_the_teacher_forced_ones(three_records):
    model = sharp_critic("tiny-qwen3.5")
    batch = prompt_batch(model, three_records)
    sampling = SamplingConfig(temperature=0.7, top_k=20, max_new_tokens=6)
    rollouts = HFRolloutEngine(model).generate(batch, 2, sampling, with_logprobs=True,
                                               seeds=prompt_seeds(0, 0, ["a", "b", "c"]))
    mask = rollouts.completion_mask
    logp = completion_logprobs(model, batch, rollouts.completion_ids, mask, 2, sampling.temperature)
    # The sampler's log-probs are after top-k renormalization; the trainer's are the temperature-only
    # distribution, so they differ by the log of the top-k mass: never positive, and equal where it is 1.
    gap = (logp - rollouts.sampling_logp) * mask
    assert (gap <= 1e-4).all() and torch.isfinite(rollouts.sampling_logp).all()
    plain = HFRolloutEngine(model).generate(batch, 2, SamplingConfig(temperature=0.7, max_new_tokens=6),
                                            with_logprobs=True, seeds=prompt_seeds(0, 0, ["a", "b", "c"]))
    plain_logp = completion_logprobs(model, batch, plain.completion_ids, plain.completion_mask, 2, 0.7)
    torch.testing.assert_close(plain_logp, plain.sampling_logp * plain.completion_mask, rtol=0, atol=1e-4)


@pytest.mark.parametrize("sampling", [SamplingConfig(temperature=0.5), SamplingConfig(temperature=1.0, top_k=3),
                                      SamplingConfig(temperature=1.0, top_p=0.8)])
def test_seeded_draws_follow_the_warped_distribution(sampling):
    logits = torch.tensor([2.0, 1.5, 1.0, 0.0, -1.0, -3.0])
    rows = 20000
    sampler = SeededSampler(row_uniforms(list(range(rows)), 1, 1), SamplingConfig(**{**vars(sampling),
                                                                                    "max_new_tokens": 1}), [5])
    picked = sampler(torch.zeros(rows, 1, dtype=torch.long), logits.expand(rows, -1).clone())
    tokens = picked.argmax(dim=-1)
    assert (picked.isfinite().sum(dim=-1) == 1).all()
    # Reference: softmax at the temperature, token 5 suppressed, then top-k / nucleus renormalized by hand.
    probs = torch.softmax(logits[:5] / sampling.temperature, dim=0)
    if sampling.top_k:
        probs[probs.argsort(descending=True)[sampling.top_k:]] = 0
    if sampling.top_p < 1:
        order = probs.argsort(descending=True)
        before = probs[order].cumsum(0) - probs[order]  # mass ahead of each token: kept while < top_p
        probs[order[before >= sampling.top_p]] = 0
    probs = torch.cat([probs / probs.sum(), torch.zeros(1)])
    counts = torch.bincount(tokens, minlength=6).double()
    expected = probs.double() * rows
    assert (counts[expected == 0] == 0).all()
    seen = expected > 0
    z = (counts[seen] - expected[seen]) / (expected[seen] * (1 - probs[seen].double())).sqrt()
    assert z.abs().max() < 4.5, (counts, expected)
    logp = sampler.sampling_logp()[:, 0]
    torch.testing.assert_close(logp, probs[tokens].log().float(), rtol=0, atol=1e-5)
    assert not math.isinf(float(logp.min()))
