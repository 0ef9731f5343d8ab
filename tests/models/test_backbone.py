"""Backbone loader: tiny offline presets of the three Qwen-VL families, and fail-fast hub ids."""

import sys
import time
import types

import pytest
import torch

from ie_eval.data.collate import EditCollator, model_inputs
from ie_eval.models import backbone as backbone_module
from ie_eval.models.backbone import (
    BackboneLoadError,
    check_attn_implementation,
    list_presets,
    load_backbone,
    resolve_dtype,
)
from ie_eval.models.tokenizer_offline import family_tokenizer_spec

PRESETS = ["tiny-qwen2.5-vl", "tiny-qwen3-vl", "tiny-qwen3.5"]


@pytest.fixture
def two_records(edit_record_factory):
    """B=2 with different prompt lengths and image sizes; both carry a critique target."""
    return [
        edit_record_factory("pair-a", critique="[Visual Quality]\nSharp.", mos=(3.0, 4.0, 5.0)),
        edit_record_factory(
            "pair-b",
            instruction="remove the blue square and make the background a little more green",
            source_size=(96, 40),
            edited_size=(40, 72),
            critique="short",
        ),
    ]


def test_list_presets_names_the_three_families():
    assert list_presets() == sorted(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_forward_backward_and_left_padded_generate(name, two_records):
    backbone = load_backbone(name)
    train = EditCollator(backbone.processor, task="critic", mode="train", max_pixels=64 * 64)(two_records)
    out = backbone.model(**model_inputs(train, with_labels=True))
    batch, length = train["input_ids"].shape
    assert out.logits.shape == (batch, length, len(backbone.tokenizer)) and batch == 2
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.loss)
    out.loss.backward()
    assert backbone.model.get_input_embeddings().weight.grad.abs().sum() > 0

    backbone.model.eval()
    generate = EditCollator(backbone.processor, task="critic", mode="generate", max_pixels=64 * 64)
    prompts = generate(two_records)
    assert prompts["attention_mask"][:, -1].all()  # left padded: every prompt ends at the last column
    kwargs = {"max_new_tokens": 3, "min_new_tokens": 3, "do_sample": False}
    with torch.no_grad():
        tokens = backbone.model.generate(**model_inputs(prompts), **kwargs)
        alone = backbone.model.generate(**model_inputs(generate(two_records[:1])), **kwargs)
    assert tokens.shape == (2, prompts["input_ids"].shape[1] + 3)
    # The padded (shorter) sample generates what it generates alone: padding is invisible.
    assert tokens[0, -3:].tolist() == alone[0, -3:].tolist()


@pytest.mark.parametrize("name", PRESETS)
def test_preset_weights_are_a_function_of_seed_only(name):
    before = torch.random.get_rng_state()
    first = load_backbone(name, seed=3).model.state_dict()
    assert torch.equal(torch.random.get_rng_state(), before)  # building does not move the global RNG
    again = load_backbone(name, seed=3).model.state_dict()
    other = load_backbone(name, seed=4).model.state_dict()
    assert first.keys() == again.keys()
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert any(not torch.equal(first[key], other[key]) for key in first)


@pytest.mark.parametrize("name", PRESETS)
def test_tokenizer_special_tokens_agree_with_config(name):
    backbone = load_backbone(name)
    tokenizer, config = backbone.tokenizer, backbone.model.config
    _, added_tokens, _, _ = family_tokenizer_spec(backbone.family)
    ids = [tokenizer.convert_tokens_to_ids(token) for token, _ in added_tokens]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # the real family's order
    assert config.get_text_config().vocab_size == len(tokenizer)
    assert (
        backbone.image_token_id
        == tokenizer.convert_tokens_to_ids("<|image_pad|>")
        == backbone.processor.image_token_id
    )
    assert config.vision_start_token_id == tokenizer.convert_tokens_to_ids("<|vision_start|>")
    assert config.vision_end_token_id == tokenizer.convert_tokens_to_ids("<|vision_end|>")
    assert config.video_token_id == tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert tokenizer.eos_token == "<|im_end|>" and backbone.pad_token_id == tokenizer.convert_tokens_to_ids(
        "<|endoftext|>"
    )
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in backbone.eos_token_ids
    assert tokenizer("<|im_start|>user\n<|image_pad|>")["input_ids"][0] == tokenizer.convert_tokens_to_ids(
        "<|im_start|>"
    )
    text = "Visual quality: 4.5, the red circle is now blue."
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


@pytest.mark.parametrize("name", PRESETS)
def test_chat_template_renders_vision_tokens_and_generation_prompt(name):
    processor = load_backbone(name).processor
    messages = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Rate it."}],
        }
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    assert "<|im_start|>user\n" in text and "Rate it.<|im_end|>\n" in text
    assert "\n<|im_start|>assistant\n" in text
    assert not processor.apply_chat_template(messages).rstrip().endswith("assistant")


def test_qwen3_5_template_closes_the_think_block_when_thinking_is_off():
    processor = load_backbone("tiny-qwen3.5").processor
    messages = [{"role": "user", "content": "hi"}]
    thinking_off = processor.apply_chat_template(messages, add_generation_prompt=True, enable_thinking=False)
    assert thinking_off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_hub_id_offline_fails_fast_with_local_path_hint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Whatever this machine's HF cache holds, the id must count as not downloaded.
    monkeypatch.setattr(backbone_module, "_in_hf_cache", lambda repo_id: False)
    start = time.perf_counter()
    with pytest.raises(BackboneLoadError) as info:
        load_backbone("Qwen/Qwen3.5-4B")
    assert time.perf_counter() - start < 5.0
    message = str(info.value)
    assert "hf download Qwen/Qwen3.5-4B --local-dir DIR" in message and "model: DIR" in message
    assert "tiny-qwen3.5" in message


def test_missing_local_directory_fails_with_hint(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(BackboneLoadError, match="model directory not found") as info:
        load_backbone(str(missing))
    assert str(missing) in str(info.value) and "--local-dir" in str(info.value)


def test_dtype_attention_and_checkpointing_are_applied():
    backbone = load_backbone(
        "tiny-qwen3-vl", dtype="bf16", attn_implementation="eager", gradient_checkpointing=True
    )
    assert {p.dtype for p in backbone.model.parameters()} == {torch.bfloat16}
    assert backbone.model.config._attn_implementation == "eager"
    model = backbone.model  # transformers 5.17 (the GPU image's) has only is_gradient_checkpointing
    assert getattr(model, "is_activation_checkpointing", None) or model.is_gradient_checkpointing
    assert model.config.use_cache is False
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("float8")


def test_overrides_resize_the_preset_and_unknown_ones_raise():
    backbone = load_backbone("tiny-qwen2.5-vl", hidden_size=128, head_dim=32, num_hidden_layers=1)
    assert backbone.hidden_size == 128 and backbone.model.config.text_config.num_hidden_layers == 1
    with pytest.raises(TypeError, match="hidden_sise"):
        load_backbone("tiny-qwen2.5-vl", hidden_sise=128)


def test_saved_preset_reloads_from_local_directory(tmp_path):
    original = load_backbone("tiny-qwen3.5", seed=7)
    original.model.save_pretrained(tmp_path)
    original.processor.save_pretrained(tmp_path)
    reloaded = load_backbone(str(tmp_path))
    assert reloaded.family == "qwen3.5" and type(reloaded.processor) is type(original.processor)
    assert reloaded.image_token_id == original.image_token_id and reloaded.image_factor == 32
    before, after = original.model.state_dict(), reloaded.model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_tiny_init_ranges_set_the_weight_scale_of_decoder_and_tower_separately():
    default = load_backbone("tiny-qwen3.5").model
    scaled = load_backbone("tiny-qwen3.5", initializer_range=0.1, vision_initializer_range=0.2).model
    def std(model, name):
        return float(dict(model.named_parameters())[name].std())
    q, tower = "model.language_model.layers.1.self_attn.q_proj.weight", "model.visual.blocks.0.attn.qkv.weight"
    assert abs(std(default, q) - 0.02) < 0.004 and abs(std(default, tower) - 0.02) < 0.004
    assert abs(std(scaled, q) - 0.1) < 0.02 and abs(std(scaled, tower) - 0.2) < 0.04


def test_world_tokenizer_spells_world_words_as_single_tokens():
    world = load_backbone("tiny-qwen3.5", tokenizer="synth-world").tokenizer
    builtin = load_backbone("tiny-qwen3.5").tokenizer
    text = "objects: small purple triangle in the bottom right corner. background: pink checkered."
    assert len(world(text)["input_ids"]) < 0.7 * len(builtin(text)["input_ids"])
    assert world.decode(world(text)["input_ids"]) == text


@pytest.mark.parametrize("name", PRESETS)
def test_each_image_reaches_the_decoder_at_its_own_tokens_and_positions(name, edit_record_factory):
    """The two-image path: the tower's features of the source land on the first image's tokens and
    the edit's on the second's (swapping the images swaps them), and the second image's rotary
    positions continue after the first's instead of repeating them."""
    from dataclasses import replace

    backbone = load_backbone(name)
    backbone.model.eval()
    captured: dict = {}

    def keep(module, args, kwargs):
        captured.update(embeds=kwargs["inputs_embeds"].detach().clone(), positions=kwargs["position_ids"])

    backbone.model.model.language_model.register_forward_pre_hook(keep, with_kwargs=True)
    record = edit_record_factory("pair-two", critique="fine")
    swapped = replace(record, source_image=record.edited_image, edited_image=record.source_image)
    collate = EditCollator(backbone.processor, task="reward", mode="train", max_pixels=64 * 64)
    spans = []
    for one in (record, swapped):
        batch = collate([one])
        with torch.no_grad():
            backbone.model(**model_inputs(batch))
        image_token = backbone.model.config.image_token_id
        where = (batch["input_ids"][0] == image_token).nonzero().flatten()
        half = len(where) // 2
        first, second = where[:half], where[half:]
        spans.append((captured["embeds"][0, first], captured["embeds"][0, second], captured["positions"], first, second))
    (a_first, a_second, positions, first, second), (b_first, b_second, *_) = spans
    assert not torch.allclose(a_first, a_second)  # the two images differ
    torch.testing.assert_close(a_first, b_second)
    torch.testing.assert_close(a_second, b_first)
    temporal = positions[0, 0] if positions.dim() == 3 else positions[0]  # (rows, B, L) for mrope, else (B, L)
    assert temporal[second].min() > temporal[first].max()


def test_flash_attention_without_flash_attn_names_the_field_and_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # import fails, as on any machine without it
    with pytest.raises(BackboneLoadError, match="backbone_kwargs.attn_implementation") as info:
        load_backbone("tiny-qwen2.5-vl", attn_implementation="flash_attention_2")
    message = str(info.value)
    assert "pip install --no-build-isolation 'ie-eval[gpu-build]'" in message and "nvcc" in message
    assert "attn_implementation: sdpa" in message


def test_attention_check_passes_when_the_kernel_imports(monkeypatch):
    monkeypatch.setitem(sys.modules, "flash_attn", types.ModuleType("flash_attn"))
    check_attn_implementation("flash_attention_2")
    for name in ("sdpa", "eager", None):
        check_attn_implementation(name)  # they need no extra package


def test_an_export_recorded_with_flash_attention_loads_with_sdpa_where_flash_attn_is_absent(monkeypatch, caplog):
    from ie_eval.models.backbone import backbone_from_file

    monkeypatch.setitem(sys.modules, "flash_attn", None)
    with caplog.at_level("WARNING"):
        name, kwargs = backbone_from_file({"name": "tiny-qwen2.5-vl", "attn_implementation": "flash_attention_2",
                                           "dtype": "float32"}, "runs/x/export/critic_config.json")
    assert name == "tiny-qwen2.5-vl" and kwargs == {"attn_implementation": "sdpa", "dtype": "float32"}
    assert "critic_config.json" in caplog.text and "loading with sdpa" in caplog.text
    load_backbone(name, **kwargs)  # and it loads
    monkeypatch.setitem(sys.modules, "flash_attn", types.ModuleType("flash_attn"))
    assert backbone_from_file({"name": "tiny-qwen2.5-vl", "attn_implementation": "flash_attention_2"},
                              "x")[1]["attn_implementation"] == "flash_attention_2"  # kept where it imports
