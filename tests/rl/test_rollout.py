"""Rollout engines: shared prefill == repeated prompts, sampling, masks, teacher-forced log-probs, reference."""

import pytest
import torch

from ie_eval.data.collate import EditCollator
from ie_eval.models.adapters import AdapterConfig
from ie_eval.models.critic import CriticModel
from ie_eval.rl.rollout import (
    SamplingConfig,
    build_rollout_engine,
    completion_logprobs,
    completion_logprobs_and_entropy,
    frozen_copy,
    reference_mode,
)
from ie_eval.rl.rollout.base import completion_mask
from ie_eval.rl.rollout.hf import HFRolloutEngine
from ie_eval.rl.rollout.vllm import MissingExtraError

PIXELS = dict(max_pixels=64 * 64, min_pixels=32 * 32)
GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=6)
PRESETS = ["tiny-qwen2.5-vl", "tiny-qwen3-vl", "tiny-qwen3.5"]


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sharp_critic(preset):
    """A seeded tiny critic with its weights scaled up, so that its output depends on the prompt and images
    (at the default init every prompt gives the same greedy text and a position error would not show)."""
    torch.manual_seed(0)
    model = CriticModel.build(preset).eval()
    with torch.no_grad():
        for parameter in model.backbone.parameters():
            if parameter.ndim == 2:
                parameter.mul_(4.0)
    return model


@pytest.fixture
def records(edit_record_factory):
    """Two prompts of different lengths and image sizes, so left padding and M-RoPE offsets differ."""
    return [
        edit_record_factory("a", instruction="make the circle blue", source_size=(96, 64), edited_size=(96, 64)),
        edit_record_factory("b", instruction="add a small green square in the top left corner of the picture",
                            source_size=(48, 48), edited_size=(48, 48)),
    ]


def prompt_batch(model, records):
    return EditCollator(model.processor, task="critic", mode="generate", **PIXELS)(records)


def count_images_encoded(model):
    """A list that receives the number of images of every vision-tower call."""
    seen = []
    visual = next(m for name, m in model.backbone.named_modules() if name.endswith("visual"))
    visual.register_forward_hook(lambda module, args, kwargs, out: seen.append(
        int((kwargs.get("grid_thw") if "grid_thw" in kwargs else args[1]).shape[0])), with_kwargs=True)
    return seen


@pytest.mark.parametrize("preset", PRESETS)
def test_shared_prefill_gives_the_repeated_prompt_tokens_and_encodes_images_once(preset, records):
    model = sharp_critic(preset)
    batch = prompt_batch(model, records)
    images = count_images_encoded(model)
    shared = HFRolloutEngine(model).generate(batch, 3, GREEDY, with_logprobs=True)
    shared_images, images[:] = list(images), []
    naive = HFRolloutEngine(model, share_prefill=False).generate(batch, 3, GREEDY, with_logprobs=True)
    assert shared_images == [4]  # one call, 2 prompts x 2 images
    assert images == [12]  # the repeated path encodes every image G = 3 times
    assert torch.equal(shared.completion_ids, naive.completion_ids)
    torch.testing.assert_close(shared.sampling_logp, naive.sampling_logp, rtol=0, atol=1e-4)
    assert shared.texts == naive.texts
    assert shared.prompt_index.tolist() == [0, 0, 0, 1, 1, 1]
    # the two prompts get different completions: a wrong prompt position or image would change them
    assert not torch.equal(shared.completion_ids[0], shared.completion_ids[3])


def test_sampling_differs_within_a_group_and_repeats_under_a_seed(records):
    torch.manual_seed(0)
    model = CriticModel.build("tiny-qwen3-vl").eval()
    engine = build_rollout_engine("hf", model)
    batch = prompt_batch(model, records)
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=5)
    torch.manual_seed(1)
    first = engine.generate(batch, 4, sampling)
    torch.manual_seed(1)
    again = engine.generate(batch, 4, sampling)
    assert torch.equal(first.completion_ids, again.completion_ids)
    for group in first.completion_ids.view(2, 4, -1):
        assert len({tuple(row.tolist()) for row in group}) > 1


def test_completion_mask_stops_after_the_first_stop_token():
    ids = torch.tensor([[5, 9, 2, 0], [5, 6, 7, 8], [2, 0, 0, 0]])
    mask, finished = completion_mask(ids, [2, 3])
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert finished.tolist() == [True, False, True]


@pytest.mark.parametrize("preset", ["tiny-qwen3-vl", "tiny-qwen3.5"])
def test_teacher_forced_logprobs_equal_the_generation_scores(preset, records):
    model = sharp_critic(preset)
    batch = prompt_batch(model, records)
    rollouts = HFRolloutEngine(model).generate(batch, 2, GREEDY, with_logprobs=True)
    mask = rollouts.completion_mask.clone()
    mask[1, 3:] = 0  # a shorter completion: padding must not shift the other tokens
    logp, entropy = completion_logprobs_and_entropy(model, batch, rollouts.completion_ids, mask, group_size=2)
    assert logp.shape == rollouts.completion_ids.shape
    torch.testing.assert_close(logp, rollouts.sampling_logp * mask, rtol=0, atol=1e-4)
    assert (logp[mask == 0] == 0).all() and (entropy[mask.bool()] > 0).all()
    chunked = completion_logprobs(model, batch, rollouts.completion_ids, mask, group_size=2, micro_batch_size=3)
    torch.testing.assert_close(chunked, logp, rtol=0, atol=1e-5)


def test_reference_mode_disables_the_peft_adapter(records):
    model = sharp_critic("tiny-qwen3-vl")
    batch = prompt_batch(model, records)
    rollouts = HFRolloutEngine(model).generate(batch, 1, GREEDY)
    args = (batch, rollouts.completion_ids, rollouts.completion_mask, 1)
    with torch.no_grad():
        base = completion_logprobs(model, *args)
        model.attach_adapter(AdapterConfig(kind="lora", r=4, alpha=8))
        for name, parameter in model.backbone.named_parameters():
            if "lora_B" in name:
                parameter.add_(0.5)
        policy = completion_logprobs(model, *args)
        with reference_mode(model) as reference:
            ref = completion_logprobs(reference, *args)
    assert (policy - base).abs().max() > 1e-3  # the adapter changes the policy
    torch.testing.assert_close(ref, base, rtol=0, atol=1e-5)


def test_reference_mode_needs_a_frozen_copy_without_peft():
    model = CriticModel.build("tiny-qwen3-vl")
    with pytest.raises(ValueError, match="frozen_copy"):
        with reference_mode(model):
            pass
    reference = frozen_copy(model)
    with reference_mode(model, ref_model=reference) as chosen:
        assert chosen is reference
    assert not any(p.requires_grad for p in reference.parameters())


def test_unknown_engine_and_missing_vllm_are_clear_errors():
    with pytest.raises(ValueError, match=r"unknown rollout engine 'sglang'.*'hf', 'vllm'"):
        build_rollout_engine("sglang", model=None)
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(MissingExtraError, match=r"pip install 'ie-eval\[vllm\]'"):
            build_rollout_engine("vllm", model=None)
    else:
        pytest.skip("vllm is installed")


def test_sampling_config_rejects_bad_values():
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0.0)
