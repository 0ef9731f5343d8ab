"""The vLLM rollout engine: its pure pieces here (weight names and merged values, export, prompts,
output conversion), the engine itself only where vLLM and CUDA are present (skipped otherwise)."""

import copy
from dataclasses import dataclass, field

import pytest
import torch

from ie_eval.data.collate import EditCollator
from ie_eval.models.adapters import AdapterConfig
from ie_eval.models.critic import CriticModel
from ie_eval.rl.rollout import SamplingConfig
from ie_eval.rl.rollout.vllm import export_backbone, rollouts_from_outputs, vllm_prompts
from ie_eval.rl.rollout.weights import merged_weights, plain_weight_name

PRESET = "tiny-qwen2.5-vl"  # an architecture vLLM supports
PIXELS = dict(max_pixels=64 * 64, min_pixels=32 * 32)


@pytest.fixture(scope="module")
def lora_critic():
    """A tiny LoRA critic with non-zero adapters (B = 0 at init would make merging a no-op), and the
    state_dict keys of its backbone before PEFT wrapped it."""
    torch.manual_seed(0)
    model = CriticModel.build(PRESET)
    plain_keys = list(model.backbone.state_dict())
    model.attach_adapter(AdapterConfig(kind="lora", r=4, alpha=8, include_vision=True))
    with torch.no_grad():
        for name, parameter in model.backbone.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    return model, plain_keys


def test_peft_names_map_to_plain_names():
    assert plain_weight_name("base_model.model.model.language_model.layers.0.self_attn.q_proj.base_layer.weight") \
        == "model.language_model.layers.0.self_attn.q_proj.weight"
    assert plain_weight_name("base_model.model.lm_head.modules_to_save.default.weight") == "lm_head.weight"


def test_merged_weights_have_the_plain_backbone_names_and_the_merged_values(lora_critic):
    model, plain_keys = lora_critic
    weights = dict(merged_weights(model.backbone))
    merged = copy.deepcopy(model.backbone).merge_and_unload().state_dict()
    assert list(weights) == plain_keys
    assert set(merged) == set(plain_keys)
    for name, value in merged.items():
        torch.testing.assert_close(weights[name], value, rtol=0, atol=1e-6, msg=name)
    lora_targets = [n for n in plain_keys if n.endswith("q_proj.weight")]
    base = dict(model.backbone.named_parameters())
    changed = [n for n in lora_targets
               if not torch.equal(weights[n], base[f"base_model.model.{n.removesuffix('.weight')}.base_layer.weight"])]
    assert changed == lora_targets  # every adapted weight really carries its delta


def test_merged_weights_leave_the_policy_untouched(lora_critic):
    model, _ = lora_critic
    before = {name: tensor.clone() for name, tensor in model.backbone.state_dict().items()}
    for _ in merged_weights(model.backbone):
        pass
    after = model.backbone.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert not any(getattr(m, "merged", False) for m in model.backbone.modules())


def test_export_writes_the_merged_backbone_and_processor(lora_critic, tmp_path):
    model, _ = lora_critic
    directory = export_backbone(model, tmp_path / "export")
    base_class = type(model.backbone.get_base_model())
    loaded = base_class.from_pretrained(directory).state_dict()
    weights = dict(merged_weights(model.backbone))
    assert set(loaded) == set(weights)
    for name, value in loaded.items():
        torch.testing.assert_close(value, weights[name].to(value), rtol=0, atol=1e-6, msg=name)
    assert (directory / "preprocessor_config.json").exists() or (directory / "processor_config.json").exists()
    assert "quantization_config" not in (directory / "config.json").read_text()


def test_vllm_prompts_are_the_collators_text_and_resized_images(records_pair):
    model = CriticModel.build(PRESET)
    collator = EditCollator(model.processor, task="critic", mode="generate", **PIXELS)
    batch = collator(records_pair)
    prompts = vllm_prompts(batch)
    assert [p["prompt"] for p in prompts] == [collator.render_prompt(r) for r in records_pair]
    for row, (prompt, record) in enumerate(zip(prompts, records_pair, strict=True)):
        images = prompt["multi_modal_data"]["image"]
        assert [im.size for im in images] == [im.size for im in collator.load_pair(record)]
        # the processor given these bounds leaves the images as they are: same image tokens as the batch
        alone = model.processor(text=[prompt["prompt"]], images=images, return_tensors="pt",
                                **prompt["mm_processor_kwargs"])
        tokens = batch["input_ids"][row][batch["attention_mask"][row].bool()]
        assert alone["input_ids"][0].tolist() == tokens.tolist()
    with pytest.raises(ValueError, match="prompt_texts"):
        vllm_prompts({"input_ids": batch["input_ids"]})


@pytest.fixture
def records_pair(edit_record_factory):
    return [
        edit_record_factory("a", instruction="make the circle blue", source_size=(96, 64), edited_size=(96, 64)),
        edit_record_factory("b", instruction="add a green square", source_size=(48, 48), edited_size=(40, 56)),
    ]


# --- vLLM's output structure, as a test double --------------------------------------------
@dataclass
class Logprob:
    logprob: float


@dataclass
class CompletionOutput:
    index: int
    token_ids: list[int]
    text: str = ""
    finish_reason: str | None = None
    logprobs: list[dict[int, Logprob]] | None = None


@dataclass
class RequestOutput:
    outputs: list[CompletionOutput] = field(default_factory=list)


def completion(index, token_ids, logps=None):
    steps = None if logps is None else [{t: Logprob(lp), -1: Logprob(-9.0)} for t, lp in zip(token_ids, logps, strict=True)]
    return CompletionOutput(index=index, token_ids=token_ids, logprobs=steps)


def test_vllm_outputs_become_right_padded_rollouts():
    """A test double of vLLM's `RequestOutput` / `CompletionOutput` (fields `outputs`, `index`,
    `token_ids`, `logprobs` as vLLM documents them), since vLLM cannot run here."""
    tokenizer = CriticModel.build(PRESET).processor.tokenizer
    hello, world = tokenizer("hello world", add_special_tokens=False)["input_ids"][:2]
    stop, pad = 900, 901  # pad is itself a stop id (pad = eos), as in Qwen's tokenizers
    outputs = [
        RequestOutput([completion(1, [world, stop], [-0.5, -0.25]), completion(0, [hello, world, hello], [-1, -2, -3])]),
        RequestOutput([completion(0, [hello], [-0.1]), completion(1, [stop], [-0.2])]),
    ]
    rollouts = rollouts_from_outputs(outputs, 2, [stop, pad], pad, tokenizer, with_logprobs=True)
    assert rollouts.completion_ids.tolist() == [
        [hello, world, hello], [world, stop, pad], [hello, pad, pad], [stop, pad, pad]]
    # completions ordered by index; the length-capped [hello] (max_model_len) is not "finished" by its padding
    assert rollouts.completion_mask.tolist() == [[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 0, 0]]
    assert rollouts.finished.tolist() == [False, True, False, True]
    assert rollouts.texts == [tokenizer.decode([hello, world, hello]), tokenizer.decode([world]),
                              tokenizer.decode([hello]), ""]
    assert rollouts.prompt_index.tolist() == [0, 0, 1, 1]
    expected_logp = torch.tensor([[-1, -2, -3], [-0.5, -0.25, 0], [-0.1, 0, 0], [-0.2, 0, 0]])
    torch.testing.assert_close(rollouts.sampling_logp, expected_logp)


def test_a_single_greedy_completion_stands_for_the_group():
    tokenizer = CriticModel.build(PRESET).processor.tokenizer
    rollouts = rollouts_from_outputs([RequestOutput([completion(0, [5, 7])])], 3, [7], 0, tokenizer)
    assert rollouts.completion_ids.tolist() == [[5, 7]] * 3 and rollouts.sampling_logp is None
    with pytest.raises(ValueError, match="expected 3"):
        rollouts_from_outputs([RequestOutput([completion(0, [5]), completion(1, [6])])], 3, [7], 0, tokenizer)


# --- the engine itself: only where vLLM and a GPU are ----------------------------------------
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="the vLLM engine needs a CUDA GPU")


@pytest.fixture
def gpu_critic():
    pytest.importorskip("vllm")
    torch.manual_seed(0)
    model = CriticModel.build(PRESET).eval()
    with torch.no_grad():
        for parameter in model.backbone.parameters():
            if parameter.ndim == 2:
                parameter.mul_(4.0)  # output depends on the prompt (see tests/rl/test_rollout.py)
    return model.cuda()


def vllm_engine(model):
    from ie_eval.rl.rollout.vllm import VLLMRolloutEngine

    return VLLMRolloutEngine(model, gpu_memory_utilization=0.3, max_model_len=2048, dtype="float32")


@needs_cuda
def test_vllm_greedy_completions_equal_hf(gpu_critic, records_pair):
    from ie_eval.rl.rollout.hf import HFRolloutEngine

    batch = EditCollator(gpu_critic.processor, task="critic", mode="generate", **PIXELS)(records_pair)
    batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=8)
    engine = vllm_engine(gpu_critic)
    try:
        ours = engine.generate(batch, 2, greedy, with_logprobs=True)
    finally:
        engine.close()
    reference = HFRolloutEngine(gpu_critic).generate(batch, 2, greedy, with_logprobs=True)
    assert torch.equal(ours.completion_ids, reference.completion_ids)
    assert ours.texts == reference.texts
    torch.testing.assert_close(ours.sampling_logp, reference.sampling_logp, rtol=0, atol=1e-3)


@needs_cuda
def test_vllm_sync_weights_changes_the_completions(gpu_critic, records_pair):
    from ie_eval.rl.rollout.hf import HFRolloutEngine

    batch = EditCollator(gpu_critic.processor, task="critic", mode="generate", **PIXELS)(records_pair)
    batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=8)
    engine = vllm_engine(gpu_critic)
    try:
        before = engine.generate(batch, 1, greedy)
        with torch.no_grad():
            gpu_critic.backbone.get_output_embeddings().weight.mul_(-1.0)
        stale = engine.generate(batch, 1, greedy)
        engine.sync_weights()
        after = engine.generate(batch, 1, greedy)
    finally:
        engine.close()
    assert torch.equal(stale.completion_ids, before.completion_ids)  # nothing changes before the sync
    assert not torch.equal(after.completion_ids, before.completion_ids)
    assert torch.equal(after.completion_ids, HFRolloutEngine(gpu_critic).generate(batch, 1, greedy).completion_ids)
