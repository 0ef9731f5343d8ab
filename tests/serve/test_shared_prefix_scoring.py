"""RewardScoring with shared prefixes: the G critiques of one edit score as with every prompt run whole."""

import dataclasses

import pytest
from serve_helpers import TINY_PIXELS, reward_item

from ie_eval.serve.config import ServeConfig, ServeConfigError
from ie_eval.serve.scoring import RewardScoring, edit_key, length_order

CRITIQUES = [
    "[Visual Quality]\nSharp.\n[Final Assessment]\nVisual Quality: 4",
    "[Visual Quality]\nThe square bleeds into the background at its lower edge.\n[Final Assessment]\nVisual Quality: 2",
    "Fine.",
    "[Instruction Alignment]\nThe square is blue as asked, but a second square appeared.",
]


def grpo_like_items():
    """Two edits x four critiques, interleaved as a GRPO step's completions arrive, plus one lone edit."""
    items = [reward_item(critique, seed=seed) for critique in CRITIQUES for seed in (0, 1)]
    return items + [reward_item(CRITIQUES[0], seed=7)]


def count_images_encoded(model):
    seen = []
    visual = next(m for name, m in model.backbone.named_modules() if name.endswith("visual"))
    handle = visual.register_forward_hook(lambda module, args, kwargs, out: seen.append(
        int((kwargs.get("grid_thw") if "grid_thw" in kwargs else args[1]).shape[0])), with_kwargs=True)
    return seen, handle


@pytest.mark.parametrize("batch_size", [32, 3])
def test_shared_prefix_scores_equal_whole_prompt_scores_in_item_order(tiny_rm_dir, batch_size):
    shared = RewardScoring.from_pretrained(tiny_rm_dir, batch_size=batch_size, max_pixels=TINY_PIXELS)
    whole = RewardScoring(shared.model, batch_size=batch_size, max_pixels=TINY_PIXELS, share_prefixes=False)
    items = grpo_like_items()
    seen, handle = count_images_encoded(shared.model)
    got = shared.score(items)
    encoded_shared = sum(seen)
    seen.clear()
    expected = whole.score(items)
    handle.remove()
    assert sum(seen) == 2 * len(items)
    # Two images per group of a batch and per lone row. One batch: 3 groups. Batches of 3 over the sorted
    # edits a a a | a b b | b b c: a; a alone + b; b + c.
    assert encoded_shared == (6 if batch_size == 32 else 2 + 4 + 4)
    for a, b in zip(got, expected, strict=True):
        assert a.as_dict() == pytest.approx(b.as_dict(), abs=1e-5)
    assert len({round(s.reward, 6) for s in expected}) > 1
    assert shared.info()["share_prefixes"] and not whole.info()["share_prefixes"]


def test_length_order_keeps_each_edits_records_together(local_reward):
    records = [local_reward.prepare_record(item, f"items.{i}") for i, item in enumerate(grpo_like_items())]
    order = length_order(records, local_reward.collator.factor)
    keys = [edit_key(records[i]) for i in order]
    runs = [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]
    assert sorted(order) == list(range(len(records))) and len(runs) == len(set(keys)) == 3


def test_edit_key_reads_pixels_not_image_objects(local_reward):
    a, b = (local_reward.prepare_record(reward_item(CRITIQUES[0], seed=0), name) for name in ("a", "b"))
    assert a.meta is not b.meta and edit_key(a) == edit_key(b)
    assert edit_key(dataclasses.replace(a, instruction="make it red")) != edit_key(a)
    other = local_reward.prepare_record(reward_item(CRITIQUES[0], seed=1), "c")
    assert edit_key(other) != edit_key(a)


def test_serve_config_share_prefixes_is_a_bool_or_null():
    assert ServeConfig().share_prefixes is None and ServeConfig(share_prefixes=False).share_prefixes is False
    with pytest.raises(ServeConfigError, match="share_prefixes"):
        ServeConfig(share_prefixes="yes")


def test_server_app_passes_share_prefixes_to_its_scoring(tiny_rm_dir):
    from ie_eval.commands.serve_rm import build_server_app

    app = build_server_app(str(tiny_rm_dir), ServeConfig(share_prefixes=False, max_pixels=TINY_PIXELS))
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        assert client.get("/v1/info").json()["share_prefixes"] is False
