"""The shared scoring path: RewardScoring == the training collator + forward, in order, weighted right."""

import pytest
import torch
from serve_helpers import TINY_PIXELS, reward_item

from ie_eval.data.collate import EditCollator
from ie_eval.serve.base import RewardItem, RewardScorer, RewardServerError
from ie_eval.serve.client import RewardClient

CRITIQUE = "[Visual Quality]\nSharp.\n[Final Assessment]\nVisual Quality: 4"


def test_local_reward_matches_training_collator_and_forward(local_reward, edit_record_factory):
    records = [edit_record_factory(pair_id=f"p{i}", critique=CRITIQUE + " more" * i) for i in range(3)]
    model = local_reward.model
    collator = EditCollator(model.processor, task="reward", mode="score", max_pixels=TINY_PIXELS)
    with torch.inference_mode():
        expected = model(collator(records))
    items = [RewardItem(r.source_image, r.edited_image, r.instruction, r.critique) for r in records]
    got = local_reward.score(items)
    assert torch.allclose(torch.tensor([[s.logicality, s.accuracy, s.usefulness] for s in got]), expected, atol=1e-5)


def test_images_a_second_smart_resize_would_flip_score_as_from_their_files(local_reward, edit_record_factory):
    """100x70 shrinks below min_pixels in the 64x64 budget, so fitting it twice changes its size:
    prepared items are fitted once, as the collator fits a file."""
    record = edit_record_factory("flip", critique=CRITIQUE, source_size=(100, 70), edited_size=(90, 120))
    model = local_reward.model
    collator = EditCollator(model.processor, task="reward", mode="score", max_pixels=TINY_PIXELS,
                            min_pixels=local_reward.collator.min_pixels)
    with torch.inference_mode():
        expected = model(collator([record]))
    got = local_reward.score([RewardItem(record.source_image, record.edited_image, record.instruction, CRITIQUE)])
    assert torch.allclose(torch.tensor([[s.logicality, s.accuracy, s.usefulness] for s in got]), expected, atol=1e-5)


def test_reward_is_the_weighted_sum_with_accuracy_highest(local_reward):
    weights = local_reward.info()["reward_weights"]
    assert weights == pytest.approx([0.3, 0.4, 0.3])  # ReasonEdit's public defaults
    for s in local_reward.score([reward_item(CRITIQUE)]):
        assert s.reward == pytest.approx(0.3 * s.logicality + 0.4 * s.accuracy + 0.3 * s.usefulness, abs=1e-6)


def test_results_keep_item_order_whatever_the_length_sort(local_reward):
    items = [reward_item(CRITIQUE + " word" * n, seed=n) for n in (0, 40, 5, 80, 1)]
    together = local_reward.score(items)
    alone = [local_reward.score([item])[0] for item in items]
    for a, b in zip(together, alone, strict=True):
        assert a.as_dict() == pytest.approx(b.as_dict(), abs=1e-5)


def test_path_and_pil_images_score_the_same(local_reward, image_pair_factory):
    from PIL import Image

    source, edited = image_pair_factory("pil-vs-path")
    by_path = RewardItem(source, edited, "make it blue", CRITIQUE)
    by_pil = RewardItem(Image.open(source), Image.open(edited), "make it blue", CRITIQUE)
    assert local_reward.score([by_path]) == local_reward.score([by_pil])


def test_empty_list_scores_to_empty_list(local_reward):
    assert local_reward.score([]) == []


def test_blank_critique_is_a_reward_server_error_naming_it(local_reward):
    with pytest.raises(RewardServerError, match="items.0: critique is blank") as caught:
        local_reward.score([reward_item("   ")])
    assert (caught.value.status, caught.value.field) == (422, "items.0")  # as the server would refuse it


def test_local_reward_and_client_are_both_reward_scorers(local_reward):
    assert isinstance(local_reward, RewardScorer)
    assert isinstance(RewardClient("http://127.0.0.1:1"), RewardScorer)
