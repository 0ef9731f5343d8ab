"""Chat messages -> the collator's batch: process_vision_info images give the batch a record of the same files gives."""

import base64

import pytest
import torch
from PIL import Image, ImageDraw
from qwen_vl_utils import smart_resize as vision_smart_resize
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as collator_smart_resize

from ie_eval.data.chat_inputs import (
    IMAGES_KEY,
    ChatInputError,
    PreloadedCollator,
    VisionBudget,
    record_from_messages,
    split_edit_messages,
    vision_image,
)
from ie_eval.data.collate import load_rgb
from ie_eval.data.records import EditRecord
from ie_eval.models.tiny_presets import get_preset, list_presets, tiny_processor

INSTRUCTION = "make the red circle blue"
CRITIQUE = "[Visual Quality]\nSharp.\n[Final Assessment]\nVisual Quality: 4"
# Wide: every size lands inside it, so smart_resize is a fixed point the processor leaves alone.
WIDE = {"min_pixels": 1024, "max_pixels": 64 * 64}
# Tight: shrinking 100x70 floors below min_pixels, so each smart_resize flips the size.
TIGHT = {"min_pixels": 3136, "max_pixels": 64 * 64}


@pytest.fixture(scope="module", params=list_presets())
def processor(request):
    return tiny_processor(get_preset(request.param))


@pytest.fixture
def files(tmp_path):
    """(source, edited) PNGs that both need a resize: 100x70 and 90x120."""
    paths = []
    for name, size, color in (("source", (100, 70), "red"), ("edited", (90, 120), "blue")):
        image = Image.new("RGB", size, "white")
        ImageDraw.Draw(image).ellipse((10, 10, 60, 50), fill=color)
        image.save(tmp_path / f"{name}.png")
        paths.append(tmp_path / f"{name}.png")
    return paths


def conversation(source, edited, instruction=INSTRUCTION, critique=None, **image_keys):
    messages = [{"role": "user", "content": [
        {"type": "image", "image": source, **image_keys},
        {"type": "image", "image": edited, **image_keys},
        {"type": "text", "text": instruction},
    ]}]
    if critique is not None:
        messages.append({"role": "assistant", "content": critique})
    return messages


def data_url(path):
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def assert_same_batch(got, expected):
    for key in ("input_ids", "attention_mask", "image_grid_thw"):
        assert torch.equal(got[key], expected[key]), key
    assert torch.allclose(got["pixel_values"], expected["pixel_values"], atol=1e-5)


IMAGE_FORMS = {
    "path": lambda p: str(p),
    "file url": lambda p: f"file://{p}",
    "data url": data_url,
    "pil": lambda p: Image.open(p),
}


@pytest.mark.parametrize("form", list(IMAGE_FORMS))
@pytest.mark.parametrize("budget", [WIDE, TIGHT], ids=["wide", "tight"])
def test_messages_batch_equals_the_collators_batch_of_the_same_files(processor, files, form, budget):
    collator = PreloadedCollator(processor, task="reward", mode="score", **budget)
    record = EditRecord("pair", "src", files[0], files[1], INSTRUCTION, critique=CRITIQUE)
    to_value = IMAGE_FORMS[form]
    from_messages = record_from_messages(
        conversation(to_value(files[0]), to_value(files[1]), critique=CRITIQUE), VisionBudget.of(collator), "pair"
    )
    assert (from_messages.instruction, from_messages.critique) == (INSTRUCTION, CRITIQUE)
    assert_same_batch(collator([from_messages]), collator([record]))


def test_both_resizes_actually_ran(processor, files):
    """The equality above is not vacuous: neither file is at a size the budget keeps."""
    collator = PreloadedCollator(processor, task="critic", mode="score", **WIDE)
    record = record_from_messages(conversation(str(files[0]), str(files[1])), VisionBudget.of(collator), "pair")
    sizes = [image.size for image in record.meta[IMAGES_KEY]]
    assert sizes != [(100, 70), (90, 120)]
    assert all(w % collator.factor == 0 and h % collator.factor == 0 for w, h in sizes)


def test_a_narrower_per_image_max_pixels_gives_fewer_image_tokens(processor, files):
    collator = PreloadedCollator(processor, task="critic", mode="score", max_pixels=128 * 128, min_pixels=1024)
    budget = VisionBudget.of(collator)
    full = collator([record_from_messages(conversation(str(files[0]), str(files[1])), budget, "a")])
    narrow = collator([record_from_messages(conversation(str(files[0]), str(files[1]), max_pixels=2048), budget, "b")])
    assert int(narrow["num_image_tokens"][0]) < int(full["num_image_tokens"][0])


def test_a_per_image_max_pixels_over_the_models_is_capped_to_it(processor, files):
    collator = PreloadedCollator(processor, task="critic", mode="score", **WIDE)
    record = EditRecord("pair", "src", files[0], files[1], INSTRUCTION)
    messages = conversation(str(files[0]), str(files[1]), max_pixels=10**8)
    assert_same_batch(collator([record_from_messages(messages, VisionBudget.of(collator), "pair")]), collator([record]))


def test_a_side_rounding_to_zero_is_where_the_two_resizes_differ(processor, tmp_path):
    """transformers' smart_resize rounds a 5-pixel side to 0 and takes its min_pixels branch
    (scaling 300x5 up to 448 wide); qwen_vl_utils' clamps that side to one factor first and,
    already over min_pixels, keeps the width at the nearest multiple of the factor."""
    path = tmp_path / "thin.png"
    Image.new("RGB", (300, 5), "red").save(path)
    collator = PreloadedCollator(processor, task="critic", mode="score", max_pixels=262_144, min_pixels=3136)
    factor = collator.factor
    image = vision_image(split_edit_messages(conversation(str(path), str(path))).source, VisionBudget.of(collator))
    record_image = collator.load_pair(EditRecord("p", "s", path, path, INSTRUCTION))[0]
    assert image.size[::-1] == vision_smart_resize(5, 300, factor, 3136, 262_144) == (factor, round(300 / factor) * factor)
    assert record_image.size[::-1] == collator_smart_resize(5, 300, factor, 3136, 262_144) == (factor, 448)


@pytest.mark.parametrize("as_pil", [False, True], ids=["path", "pil"])
def test_an_image_too_thin_for_the_budget_is_refused_naming_it(processor, tmp_path, as_pil):
    """Shrinking 600x20 into 4096 pixels floors its short side to 0 in qwen_vl_utils (transformers clamps it)."""
    path = tmp_path / "thin.png"
    Image.new("RGB", (600, 20), "red").save(path)
    collator = PreloadedCollator(processor, task="critic", mode="score", **WIDE)
    value = Image.open(path) if as_pil else str(path)
    edit = split_edit_messages(conversation(str(path), value))
    with pytest.raises(ChatInputError, match=r"messages\.0\.content\.1\.image") as caught:
        vision_image(edit.edited, VisionBudget.of(collator))
    assert caught.value.field == "messages.0.content.1.image"
    assert "too elongated" in caught.value.message if as_pil else "must be > 0" in caught.value.message


def test_transparent_pixels_become_white_through_messages_but_keep_their_colour_through_load_rgb(processor, tmp_path):
    path = tmp_path / "rgba.png"
    Image.new("RGBA", (64, 64), (200, 0, 0, 0)).save(path)
    collator = PreloadedCollator(processor, task="critic", mode="score", **WIDE)
    image = vision_image(split_edit_messages(conversation(str(path), str(path))).source, VisionBudget.of(collator))
    assert image.getpixel((32, 32)) == (255, 255, 255)
    assert load_rgb(path, "p", "source").getpixel((32, 32)) == (200, 0, 0)


def test_relative_paths_resolve_under_base_dir(processor, files):
    budget = VisionBudget.of(PreloadedCollator(processor, task="critic", mode="score", **WIDE))
    relative = record_from_messages(conversation(files[0].name, files[1].name), budget, "p", base_dir=files[0].parent)
    absolute = record_from_messages(conversation(str(files[0]), str(files[1])), budget, "p")
    assert [i.tobytes() for i in relative.meta[IMAGES_KEY]] == [i.tobytes() for i in absolute.meta[IMAGES_KEY]]


def test_critique_is_the_assistant_text_and_text_may_sit_anywhere():
    messages = [
        {"role": "user", "content": [{"type": "text", "text": INSTRUCTION}, {"type": "image", "image": "a.png"},
                                     {"image": "b.png"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "first part"}, {"type": "text", "text": "second"}]},
    ]
    edit = split_edit_messages(messages)
    assert (edit.source.value, edit.edited.value) == ("a.png", "b.png")
    assert (edit.instruction, edit.instruction_field) == (INSTRUCTION, "messages.0.content.0.text")
    assert (edit.critique, edit.critique_field) == ("first part\nsecond", "messages.1.content")
    assert split_edit_messages(conversation("a.png", "b.png")).critique is None


def _user(*content):
    return [{"role": "user", "content": list(content)}]


IMG, TXT = {"type": "image", "image": "a.png"}, {"type": "text", "text": INSTRUCTION}
BAD_MESSAGES = {
    # name: (messages, field the error names, text it contains)
    "one image": (_user(IMG, TXT), "messages.0.content", "found 1 (messages.0.content.0.image)"),
    "three images": (_user(IMG, IMG, IMG, TXT), "messages.0.content", "exactly two images"),
    "video": (_user(IMG, {"type": "video", "video": "v.mp4"}, IMG, TXT), "messages.0.content.1", "video"),
    "no text": (_user(IMG, IMG), "messages.0.content", "exactly one text item"),
    "two texts": (_user(TXT, IMG, IMG, TXT), "messages.0.content", "found 2"),
    "blank instruction": (_user(IMG, IMG, {"type": "text", "text": "  "}), "messages.0.content.2.text", "blank"),
    "http url": (_user(IMG, {"type": "image", "image": "http://x/e.png"}, TXT), "messages.0.content.1.image", "network"),
    "https url upper case": (_user({"type": "image_url", "image_url": "HTTPS://x/e.png"}, IMG, TXT),
                             "messages.0.content.0.image_url", "network"),
    "openai url form": (_user({"type": "image_url", "image_url": {"url": "https://x"}}, IMG, TXT),
                        "messages.0.content.0.image_url", "network"),
    "data url not an image": (_user(IMG, {"image": "data:text/plain;base64,aGk="}, TXT), "messages.0.content.1.image",
                              "data:image"),
    "resized height": (_user(IMG, {**IMG, "resized_height": 28, "resized_width": 28}, TXT), "messages.0.content.1",
                       "resized_height"),
    "unknown key": (_user({**IMG, "fps": 2}, IMG, TXT), "messages.0.content.0", "unknown keys ['fps']"),
    "min over max": (_user({**IMG, "min_pixels": 5000, "max_pixels": 4000}, IMG, TXT), "messages.0.content.0",
                     "min_pixels=5000 > max_pixels=4000"),
    "bad max_pixels": (_user({**IMG, "max_pixels": "many"}, IMG, TXT), "messages.0.content.0.max_pixels", "positive"),
    "image not a string": (_user({"type": "image", "image": 5}, IMG, TXT), "messages.0.content.0.image", "got int"),
    "unknown item": (_user(IMG, IMG, TXT, {"type": "audio"}), "messages.0.content.3", "unknown content item"),
    "system message": ([{"role": "system", "content": "be nice"}, *_user(IMG, IMG, TXT)], "messages.0", "system"),
    "second user": ([*_user(IMG, IMG, TXT), *_user(TXT)], "messages.1", "second user message"),
    "assistant first": ([{"role": "assistant", "content": "x"}, *_user(IMG, IMG, TXT)], "messages.0", "must follow"),
    "assistant image": ([*_user(IMG, IMG, TXT), {"role": "assistant", "content": [IMG]}], "messages.1.content.0",
                        "text only"),
    "blank critique": ([*_user(IMG, IMG, TXT), {"role": "assistant", "content": " "}], "messages.1.content", "blank"),
    "other role": ([{"role": "tool", "content": "x"}], "messages.0.role", "'user' or 'assistant'"),
    "no user": ([], "messages", "non-empty"),
    "not a message": (["hello"], "messages.0", "'role' and 'content'"),
}


@pytest.mark.parametrize("name", list(BAD_MESSAGES))
def test_messages_that_are_not_one_edit_are_refused_naming_the_part(name):
    messages, field, text = BAD_MESSAGES[name]
    with pytest.raises(ChatInputError) as caught:
        split_edit_messages(messages)
    assert caught.value.field == field, caught.value
    assert text in caught.value.message
    assert str(caught.value).startswith(f"{field}: ")


def test_pixel_bounds_outside_the_models_budget_are_refused(processor, files):
    collator = PreloadedCollator(processor, task="critic", mode="score", **WIDE)
    messages = conversation(str(files[0]), str(files[1]), min_pixels=10**6)
    with pytest.raises(ChatInputError, match=r"messages\.0\.content\.0\.image: pixel bounds \[1000000, None\]"):
        record_from_messages(messages, VisionBudget.of(collator), "p", where="messages")


def test_a_missing_file_names_the_item(processor, files):
    collator = PreloadedCollator(processor, task="critic", mode="score", **WIDE)
    with pytest.raises(ChatInputError, match=r"p\.0\.content\.1\.image: process_vision_info could not read"):
        record_from_messages(conversation(str(files[0]), str(files[0].parent / "nope.png")), VisionBudget.of(collator), "p")


def test_a_missing_critique_is_refused_when_one_is_required(processor, files):
    collator = PreloadedCollator(processor, task="reward", mode="score", **WIDE)
    with pytest.raises(ChatInputError, match="assistant message"):
        record_from_messages(conversation(str(files[0]), str(files[1])), VisionBudget.of(collator), "p",
                             require_critique=True)
