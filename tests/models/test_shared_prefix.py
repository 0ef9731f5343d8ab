"""Prefix-shared scoring equals the plain forward: rows sharing images and instruction run that prefix once."""

import dataclasses

import pytest
import torch

from ie_eval.data.batch_rows import images_per_row
from ie_eval.data.collate import EditCollator, model_inputs
from ie_eval.models.heads import HeadConfig
from ie_eval.models.reward_model import RewardModel, inner_model
from ie_eval.models.shared_prefix import RowSpans, find_prefix_groups, shared_prefix_hidden_states

PRESETS = ["tiny-qwen2.5-vl", "tiny-qwen3-vl", "tiny-qwen3.5"]
CRITIQUES = [
    "[Visual Quality] sharp.\n[Final Assessment]\nVisual Quality: 4",
    "[Visual Quality] the square is blurred at its edges and the colour bleeds.\n[Final Assessment]\nVisual Quality: 2",
    "ok",
]


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sharp_reward_model(preset, pooling="prefill"):
    """Seeded, weights scaled up so that a state computed from the wrong context would show in the scores."""
    torch.manual_seed(0)
    model = RewardModel.build(preset, pooling=pooling, head=HeadConfig(hidden_size=16, dropout=0.0)).eval()
    with torch.no_grad():
        for parameter in model.backbone.parameters():
            if parameter.ndim == 2:
                parameter.mul_(4.0)
    return model


@pytest.fixture
def records(edit_record_factory):
    """Three critiques of edit a, two of edit b (other images, other size) and one critique of edit c."""
    a = edit_record_factory("a", instruction="make the circle blue", source_size=(96, 64), edited_size=(96, 64))
    b = edit_record_factory("b", instruction="add a green square", source_size=(48, 48), edited_size=(48, 48))
    c = edit_record_factory("c", instruction="make the circle blue", source_size=(64, 64), edited_size=(64, 64))
    rows = [dataclasses.replace(a, pair_id=f"a{i}", critique=CRITIQUES[i]) for i in range(3)]
    rows += [dataclasses.replace(b, pair_id=f"b{i}", critique=CRITIQUES[i]) for i in (1, 2)]
    rows.append(dataclasses.replace(c, critique=CRITIQUES[0]))
    order = [0, 3, 5, 1, 4, 2]  # groups interleaved in the batch
    return [rows[i] for i in order]


def collate(model, records):
    return EditCollator(model.processor, task="reward", mode="score", max_pixels=64 * 64, min_pixels=32 * 32,
                        prompt_suffix=model.prompt_suffix)(records)


def count_images_encoded(model):
    seen = []
    visual = next(m for name, m in model.backbone.named_modules() if name.endswith("visual"))
    visual.register_forward_hook(lambda module, args, kwargs, out: seen.append(
        int((kwargs.get("grid_thw") if "grid_thw" in kwargs else args[1]).shape[0])), with_kwargs=True)
    return seen


@pytest.mark.parametrize("preset", PRESETS)
def test_shared_prefix_states_and_scores_equal_the_plain_forward(preset, records):
    model = sharp_reward_model(preset)
    batch = collate(model, records)
    inputs = model_inputs(batch)
    with torch.no_grad():
        plain = inner_model(model.backbone)(**inputs, use_cache=False).last_hidden_state
        seen = count_images_encoded(model)
        shared = shared_prefix_hidden_states(inner_model(model.backbone), inputs, model.backbone.config)
        real = batch["attention_mask"].bool()
        assert torch.allclose(shared[real], plain[real], atol=1e-4, rtol=1e-4)
        assert sum(seen) == 2 + 2 + 2  # one image pair per group, plus the singleton's, not 12
        scores, reference = model.score_shared_prefixes(batch), model(batch)
    assert torch.allclose(scores, reference, atol=1e-5, rtol=1e-4)
    assert reference.std(dim=0).min() > 1e-3  # the rows' scores differ, so equality is not trivial


@pytest.mark.parametrize("pooling", ["score_anchor", "marker", "mean"])
def test_every_pooling_anchor_reads_the_same_states(pooling, records):
    model = sharp_reward_model("tiny-qwen3.5", pooling=pooling)
    batch = collate(model, [r for r in records if r.critique != "ok"] if pooling == "marker" else records)
    with torch.no_grad():
        assert torch.allclose(model.score_shared_prefixes(batch), model(batch), atol=1e-5, rtol=1e-4)


def test_groups_are_the_rows_with_equal_images_and_instruction(records):
    model = sharp_reward_model("tiny-qwen3-vl")
    inputs = model_inputs(collate(model, records))
    spans = RowSpans.of(inputs["attention_mask"])
    config = model.backbone.config
    groups = find_prefix_groups(inputs, spans, images_per_row(inputs["input_ids"], config.vision_start_token_id),
                                config.vision_end_token_id)
    assert sorted(g.rows for g in groups) == [(0, 3, 5), (1, 4)]
    for group in groups:
        ids = inputs["input_ids"]
        shortest = min(spans.lengths[r] for r in group.rows)
        assert group.length < shortest  # every row keeps a token to continue with
        heads = {tuple(ids[r, spans.starts[r] : spans.starts[r] + group.length].tolist()) for r in group.rows}
        assert len(heads) == 1
        vision_end = (ids[group.rows[0]] == config.vision_end_token_id).nonzero().max()
        assert group.length > vision_end - spans.starts[group.rows[0]]  # the images are in the prefix


def test_rows_with_equal_tokens_but_other_pixels_are_not_grouped(edit_record_factory, image_pair_factory):
    model = sharp_reward_model("tiny-qwen3-vl")
    a = edit_record_factory("a", source_size=(64, 64), edited_size=(64, 64), critique=CRITIQUES[0])
    other_source, _ = image_pair_factory("other", (64, 64), (64, 64))
    from PIL import Image

    Image.open(other_source).rotate(90).save(other_source)  # same size, so the same tokens, other pixels
    b = dataclasses.replace(a, pair_id="b", source_image=other_source)
    batch = collate(model, [a, b])
    inputs = model_inputs(batch)
    assert torch.equal(inputs["input_ids"][0], inputs["input_ids"][1])
    spans = RowSpans.of(inputs["attention_mask"])
    config = model.backbone.config
    row_images = images_per_row(inputs["input_ids"], config.vision_start_token_id)
    assert find_prefix_groups(inputs, spans, row_images, config.vision_end_token_id) == []
    with torch.no_grad():
        assert torch.allclose(model.score_shared_prefixes(batch), model(batch), atol=1e-6)


@pytest.mark.parametrize("kind", ["adalora", "lora"])
def test_an_adapted_reward_model_scores_the_same_with_shared_prefixes(kind, records):
    """Served RE-Rewards carry their AdaLoRA adapter: the shared path must run the adapted decoder."""
    from ie_eval.models.adapters import AdapterConfig

    model = sharp_reward_model("tiny-qwen3.5")
    model.attach_adapter(AdapterConfig(kind=kind, r=2, alpha=4, dropout=0.0, adalora_init_r=2, adalora_target_r=2),
                         total_steps=10)
    with torch.no_grad():  # adapters start as a no-op (zero B / singular values): make this one matter
        for name, parameter in model.backbone.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn_like(parameter))
    model.eval()
    batch = collate(model, records)
    with torch.no_grad():
        adapted = model(batch)
        with model.backbone.disable_adapter():
            base = model(batch)
        assert not torch.allclose(adapted, base, atol=1e-3)  # the adapter changes the scores
        assert torch.allclose(model.score_shared_prefixes(batch), adapted, atol=1e-5, rtol=1e-4)
