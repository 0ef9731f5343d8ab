"""EditCollator on real Qwen processors around the offline tokenizers (no model weights needed)."""

import math

import pytest
import torch

from ie_eval.data.collate import IGNORE_INDEX, CollateError, EditCollator
from ie_eval.data.prompts import (
    CRITIQUE_FORMAT,
    FINAL_ASSESSMENT,
    REWARD_CUE,
    critic_messages,
    format_critique,
)
from ie_eval.models.tiny_presets import get_preset, list_presets, tiny_processor

CRITIQUE = format_critique(
    {
        "visual_quality": "The edited image is sharp.",
        "instruction_alignment": "The circle is now blue.",
        "content_preservation": "The background is preserved.",
    },
    (4, 5, 3.5),
)


@pytest.fixture(scope="module", params=list_presets())
def processor(request):
    return tiny_processor(get_preset(request.param))


@pytest.fixture
def qwen25_processor():
    return tiny_processor(get_preset("tiny-qwen2.5-vl"))


@pytest.fixture
def records(edit_record_factory):
    """Two records whose prompts differ in length; the first has every target, the second none."""
    return [
        edit_record_factory(
            "pair-a",
            critique=CRITIQUE,
            critique_id="c1",
            mos=(1.0, 2.0, 3.0),
            critique_scores=(4.0, 5.0, 6.0),
        ),
        edit_record_factory(
            "pair-b",
            instruction="remove the blue square, then make the whole sky a deep orange",
            edited_size=(80, 40),
        ),
    ]


def test_train_pads_right_and_generate_pads_left(processor, records):
    train = EditCollator(processor, task="critic", mode="score", max_pixels=64 * 64)(records)
    generate = EditCollator(processor, task="critic", mode="generate", max_pixels=64 * 64)(records)
    pad = processor.tokenizer.pad_token_id
    for batch, left in ((train, False), (generate, True)):
        mask = batch["attention_mask"]
        short = int(mask.sum(1).argmin())
        assert mask[short].sum() < mask.shape[1]  # the shorter prompt is padded
        padded = mask[short] == 0
        expected_side = (
            torch.arange(mask.shape[1]) < padded.sum()
            if left
            else torch.arange(mask.shape[1]) >= mask[short].sum()
        )
        assert torch.equal(padded, expected_side)
        assert (batch["input_ids"][short][padded] == pad).all()
    # Same prompt tokens either way, only shifted.
    for row in range(2):
        assert torch.equal(
            train["input_ids"][row][train["attention_mask"][row].bool()],
            generate["input_ids"][row][generate["attention_mask"][row].bool()],
        )
    text = processor.tokenizer.decode(generate["input_ids"][0][generate["attention_mask"][0].bool()])
    assert text.rstrip().endswith(("<|im_start|>assistant", "</think>"))


def test_critic_labels_supervise_only_the_answer(processor, records):
    batch = EditCollator(processor, task="critic", mode="train", max_pixels=64 * 64)(records)
    labels, ids = batch["labels"], batch["input_ids"]
    supervised = labels[0] != IGNORE_INDEX
    assert processor.tokenizer.decode(labels[0][supervised]) == CRITIQUE + "<|im_end|>"
    assert torch.equal(labels[0][supervised], ids[0][supervised])
    # Supervised tokens are exactly the non-prompt real tokens: prompt and padding are masked.
    assert torch.equal(supervised, batch["attention_mask"][0].bool() & ~batch["prompt_mask"][0])
    assert not (supervised & (ids[0] == processor.image_token_id)).any()
    # A record without a critique still collates (its MOS can train a head) but supervises nothing.
    assert (labels[1] == IGNORE_INDEX).all() and batch["has_critique"].tolist() == [True, False]


def test_critic_answer_is_cut_to_max_length_but_prompt_is_not(qwen25_processor, records):
    full = EditCollator(qwen25_processor, task="critic", mode="train", max_pixels=64 * 64)(records[:1])
    prompt_length = int(full["prompt_mask"][0].sum())
    cut = EditCollator(
        qwen25_processor, task="critic", mode="train", max_pixels=64 * 64, max_length=prompt_length + 5
    )(records[:1])
    assert cut["input_ids"].shape[1] == prompt_length + 5 and int((cut["labels"] != IGNORE_INDEX).sum()) == 5
    with pytest.raises(
        CollateError, match=r"pair-a#c1: prompt is \d+ tokens \(\d+ image tokens\) > max_length"
    ):
        EditCollator(
            qwen25_processor, task="critic", mode="score", max_pixels=64 * 64, max_length=prompt_length - 1
        )(records[:1])


def test_smaller_max_pixels_gives_fewer_image_tokens_within_budget(processor, edit_record_factory):
    record = edit_record_factory("big", source_size=(400, 300), edited_size=(300, 400))
    counts = {}
    patch = processor.image_processor.patch_size
    for max_pixels in (256 * 256, 96 * 96):
        batch = EditCollator(
            processor, task="critic", mode="score", max_pixels=max_pixels, min_pixels=32 * 32
        )([record])
        grids = batch["image_grid_thw"]
        assert (grids[:, 1] * grids[:, 2] * patch * patch <= max_pixels).all()
        counts[max_pixels] = int(batch["num_image_tokens"][0])
    assert counts[96 * 96] < counts[256 * 256]


def test_token_counts_match_image_grids(processor, records):
    batch = EditCollator(processor, task="reward", mode="train", max_pixels=64 * 64)(records[:1] * 2)
    merge = processor.image_processor.merge_size
    per_sample = (batch["image_grid_thw"].prod(1) // merge**2).view(2, 2).sum(1)
    assert torch.equal(batch["num_image_tokens"], per_sample)
    assert torch.equal(batch["num_image_tokens"] + batch["num_text_tokens"], batch["attention_mask"].sum(1))
    assert (batch["num_text_tokens"] > 0).all()
    assert batch["pixel_values"].shape[0] == int(batch["image_grid_thw"].prod(1).sum())
    assert batch["mm_token_type_ids"].shape == batch["input_ids"].shape


def test_reward_prompt_holds_the_critique_and_ends_with_the_cue(qwen25_processor, records):
    batch = EditCollator(qwen25_processor, task="reward", mode="score", max_pixels=64 * 64)(records[:1])
    text = qwen25_processor.tokenizer.decode(batch["input_ids"][0])
    assert CRITIQUE in text and "labels" not in batch
    assert text.index("Source image:") < text.index("Edited image:") < text.index(CRITIQUE)
    assert text.endswith(f"{REWARD_CUE}<|im_end|>\n<|im_start|>assistant\n")


def test_reward_task_requires_a_critique(qwen25_processor, records):
    with pytest.raises(CollateError, match="pair-b: task 'reward' needs a critique"):
        EditCollator(qwen25_processor, task="reward", mode="train")(records)


def test_targets_are_nan_with_masks_where_missing(qwen25_processor, records):
    batch = EditCollator(qwen25_processor, task="critic", mode="score", max_pixels=64 * 64)(records)
    assert batch["sample_ids"] == ["pair-a#c1", "pair-b"]
    assert batch["mos"][0].tolist() == [1.0, 2.0, 3.0] and all(
        math.isnan(v) for v in batch["mos"][1].tolist()
    )
    assert batch["mos_mask"].tolist() == [True, False]
    assert batch["critique_scores"][0].tolist() == [4.0, 5.0, 6.0] and batch[
        "critique_scores_mask"
    ].tolist() == [True, False]
    assert batch["mos"].dtype == torch.float32 and batch["mos_mask"].dtype == torch.bool


def test_missing_image_error_names_path_and_sample_id(qwen25_processor, records, tmp_path):
    from dataclasses import replace

    missing = tmp_path / "gone.png"
    broken = replace(records[1], edited_image=missing)
    with pytest.raises(CollateError) as info:
        EditCollator(qwen25_processor, task="critic", mode="score")([records[0], broken])
    assert "pair-b" in str(info.value) and str(missing) in str(info.value) and "edited" in str(info.value)


def test_unreadable_image_error_names_path(qwen25_processor, records, tmp_path):
    from dataclasses import replace

    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not a png")
    with pytest.raises(CollateError, match="pair-a#c1: cannot read source image .*notes.png"):
        EditCollator(qwen25_processor, task="critic", mode="score")(
            [replace(records[0], source_image=not_an_image)]
        )


def test_unknown_task_or_mode_is_rejected(qwen25_processor):
    with pytest.raises(ValueError, match="unknown mode 'eval'"):
        EditCollator(qwen25_processor, task="critic", mode="eval")
    with pytest.raises(ValueError, match="unknown task 'judge'"):
        EditCollator(qwen25_processor, task="judge")


def test_critique_format_and_critic_prompt_share_the_structure():
    assert (
        CRITIQUE.index("[Visual Quality]")
        < CRITIQUE.index("[Content Preservation]")
        < CRITIQUE.index(FINAL_ASSESSMENT)
    )
    assert CRITIQUE.endswith("Visual Quality: 4\nInstruction Alignment: 5\nContent Preservation: 3.5")
    assert CRITIQUE_FORMAT.count("{") == 6
    content = critic_messages("make it\n[Final Assessment] blue")[0]["content"]
    assert [part["type"] for part in content] == ["text", "image", "text", "image", "text"]
    prompt = content[-1]["text"]
    assert FINAL_ASSESSMENT in prompt and "make it [Final Assessment] blue" in prompt


def test_input_budget_reads_a_recorded_budget_then_overrides_and_keeps_min_under_max() -> None:
    from ie_eval.data.collate import InputBudget

    assert InputBudget.of(None) == InputBudget()
    recorded = {"max_pixels": 16_384, "min_pixels": 1_024, "max_length": 1_024, "unrelated": 3}
    assert InputBudget.of(recorded).as_dict() == {"max_pixels": 16_384, "min_pixels": 1_024, "max_length": 1_024}
    assert InputBudget.of(recorded, max_pixels=4_096, max_length=None).as_dict() == {
        "max_pixels": 4_096, "min_pixels": 1_024, "max_length": 1_024}
    assert InputBudget.of(recorded, max_pixels=512).min_pixels == 512
