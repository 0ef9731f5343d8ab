"""Qwen-VL chat messages as edit inputs: the two images go through `qwen_vl_utils.process_vision_info`.

A Qwen-VL user writes an edit to score as one conversation:

    [{"role": "user", "content": [
        {"type": "image", "image": "src.png"},           # source image first
        {"type": "image", "image": "edit.png"},          # edited image second
        {"type": "text", "text": "make the sky orange"}, # the edit instruction, one text item
     ]},
     {"role": "assistant", "content": "[Visual Quality]\n..."}]  # optional: the critique to score

The convention: exactly one user message holding exactly two images (source, then edited) and
exactly one text item (the instruction; where it sits among the images does not matter); then
optionally one assistant message whose text is the candidate critique, since a critique is the
critic's answer to that user turn. An image is a local path, a `file://` URL, a
`data:image/...;base64,` URL or a PIL image (OpenAI's `{"url": ...}` form is unwrapped), with
optional `min_pixels` / `max_pixels`. Refused, naming the content item: video, http(s) URLs
(nothing here touches the network), system messages (the model's prompt is fixed in
`ie_eval.data.prompts`), `resized_height` / `resized_width` (the pixel budget sets the size).

Each image's resize is process_vision_info's, within the model's budget (an item's min/max
pixels are intersected with the collator's), and `PreloadedCollator` does not fit it again: like
a file through `EditCollator`, it gets one resize here and then the processor's own (a no-op
unless a shrink floored it under min_pixels). Where process_vision_info's `smart_resize` and the
collator's (`fit_to_budget`, transformers' `smart_resize`) disagree: see `vision_image`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ie_eval.data.collate import ChatCollator, CollateError, EditCollator
from ie_eval.data.records import EditRecord

# EditRecord.meta key holding the (source, edited) PIL images of an in-memory record.
IMAGES_KEY = "images"
# process_vision_info merges 2x2 patches into one token (qwen_vl_utils.SPATIAL_MERGE_SIZE).
VISION_MERGE_SIZE = 2
_IMAGE_KEYS = frozenset({"type", "image", "image_url", "min_pixels", "max_pixels"})
_NETWORK_SCHEMES = ("http://", "https://")


class ChatInputError(CollateError):
    """Messages that are not one edit; `field` is the JSON path of the offending part
    (e.g. `messages.0.content.2`), and the message starts with it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class VisionBudget:
    """What process_vision_info needs to resize as the model's collator does: its patch size
    (`image_patch_size`) and the per-image pixel bounds."""

    patch_size: int
    min_pixels: int
    max_pixels: int

    @classmethod
    def of(cls, collator: ChatCollator) -> VisionBudget:
        """The collator's budget; a processor whose merge size is not process_vision_info's is refused."""
        image_processor = collator.processor.image_processor
        if int(image_processor.merge_size) != VISION_MERGE_SIZE:
            raise ValueError(
                f"process_vision_info merges {VISION_MERGE_SIZE}x{VISION_MERGE_SIZE} patches; this processor "
                f"merges {image_processor.merge_size}x{image_processor.merge_size}"
            )
        return cls(int(image_processor.patch_size), collator.min_pixels, collator.max_pixels)

    @property
    def factor(self) -> int:
        return self.patch_size * VISION_MERGE_SIZE

    def bounds(self, entry: ImageEntry) -> tuple[int, int]:
        """(min, max) pixels of one image: its own bounds within the model's."""
        low = max(entry.min_pixels or self.min_pixels, self.min_pixels)
        high = min(entry.max_pixels or self.max_pixels, self.max_pixels)
        if low > high:
            raise ChatInputError(
                entry.field,
                f"pixel bounds [{entry.min_pixels}, {entry.max_pixels}] leave nothing within the model's "
                f"budget [{self.min_pixels}, {self.max_pixels}]",
            )
        return low, high


@dataclass(frozen=True)
class ImageEntry:
    """One image content item: its JSON path, its value (path, URL or PIL image) and pixel bounds."""

    field: str
    value: Any
    min_pixels: int | None = None
    max_pixels: int | None = None

    @property
    def local_path(self) -> Path | None:
        """The file a path or file:// value names, else None (data URL or PIL image)."""
        if not isinstance(self.value, str) or self.value.startswith("data:"):
            return None
        return Path(self.value.removeprefix("file://"))


@dataclass(frozen=True)
class EditMessages:
    """An edit read from chat messages (no image opened yet): images, instruction, critique and
    the JSON paths they came from, for limits and errors that name them."""

    source: ImageEntry
    edited: ImageEntry
    instruction: str
    instruction_field: str
    critique: str | None = None
    critique_field: str | None = None


def split_edit_messages(messages: object, where: str = "messages") -> EditMessages:
    """Check the convention (module docstring) and pick out images and texts; opens no image."""
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)) or not messages:
        raise ChatInputError(where, "must be a non-empty list of chat messages")
    user: tuple[int, list] | None = None
    critique: tuple[str, str] | None = None
    for index, message in enumerate(messages):
        at = f"{where}.{index}"
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise ChatInputError(at, "a message is an object with 'role' and 'content'")
        role, content = message["role"], message["content"]
        if role == "user":
            if user is not None:
                raise ChatInputError(at, f"a second user message ({where}.{user[0]} is the first); put both "
                                         "images and the instruction in one")
            user = (index, _content_items(content, at))
        elif role == "assistant":
            if user is None or critique is not None:
                raise ChatInputError(at, "the assistant message (the critique) must follow the one user message")
            critique = (_assistant_text(content, at), f"{at}.content")
        elif role == "system":
            raise ChatInputError(at, "system messages are not used: the model's prompt is fixed; put the "
                                     "instruction in the user message")
        else:
            raise ChatInputError(f"{at}.role", f"role must be 'user' or 'assistant', got {role!r}")
    if user is None:
        raise ChatInputError(where, "no user message: it holds the two images and the instruction")
    source, edited, instruction, instruction_field = _user_parts(user[1], f"{where}.{user[0]}.content")
    return EditMessages(source, edited, instruction, instruction_field, *(critique or (None, None)))


def _content_items(content: object, at: str) -> list:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, Sequence) or isinstance(content, bytes):
        raise ChatInputError(f"{at}.content", "must be a string or a list of content items")
    return list(content)


def _assistant_text(content: object, at: str) -> str:
    texts = []
    for index, item in enumerate(_content_items(content, at)):
        if not isinstance(item, Mapping) or _kind(item) != "text" or not isinstance(item.get("text"), str):
            raise ChatInputError(f"{at}.content.{index}", "the assistant message (the critique) holds text only")
        texts.append(item["text"])
    critique = "\n".join(texts)
    if not critique.strip():
        raise ChatInputError(f"{at}.content", "the critique (assistant message) is blank")
    return critique


def _kind(item: Mapping) -> str:
    """'image', 'video', 'text' or the unknown type, as process_vision_info tells items apart."""
    if "video" in item or item.get("type") == "video":
        return "video"
    if "image" in item or "image_url" in item or item.get("type") in ("image", "image_url"):
        return "image"
    if "text" in item or item.get("type") == "text":
        return "text"
    return str(item.get("type"))


def _user_parts(items: list, at: str) -> tuple[ImageEntry, ImageEntry, str, str]:
    images, texts = [], []
    for index, item in enumerate(items):
        field = f"{at}.{index}"
        kind = _kind(item) if isinstance(item, Mapping) else None
        if kind == "image":
            images.append(_image_entry(item, field))
        elif kind == "text":
            if not isinstance(item.get("text"), str):
                raise ChatInputError(f"{field}.text", "must be a string")
            texts.append((item["text"], f"{field}.text"))
        elif kind == "video":
            raise ChatInputError(field, "video content is not supported: an edit is two images")
        else:
            raise ChatInputError(field, f"unknown content item {item!r:.80}; use type 'image' or 'text'")
    if len(images) != 2:
        found = ", ".join(entry.field for entry in images) or "none"
        raise ChatInputError(at, f"needs exactly two images, source first and edited second; found {len(images)} ({found})")
    if len(texts) != 1:
        found = ", ".join(field for _, field in texts) or "none"
        raise ChatInputError(at, f"needs exactly one text item, the edit instruction; found {len(texts)} ({found})")
    instruction, instruction_field = texts[0]
    if not instruction.strip():
        raise ChatInputError(instruction_field, "the instruction is blank")
    return images[0], images[1], instruction, instruction_field


def _image_entry(item: Mapping, field: str) -> ImageEntry:
    if "resized_height" in item or "resized_width" in item:
        raise ChatInputError(field, "resized_height / resized_width are not supported: the model's pixel "
                                    "budget sets the size (min_pixels / max_pixels may narrow it)")
    unknown = sorted(set(item) - _IMAGE_KEYS)
    if unknown:
        raise ChatInputError(field, f"unknown keys {unknown} in an image item (allowed: {sorted(_IMAGE_KEYS)})")
    key = "image" if "image" in item else "image_url"
    value = item.get(key)
    if isinstance(value, Mapping) and isinstance(value.get("url"), str):
        value = value["url"]  # OpenAI's {"type": "image_url", "image_url": {"url": ...}}
    if isinstance(value, str):
        if value.lower().startswith(_NETWORK_SCHEMES):
            raise ChatInputError(f"{field}.{key}", "http(s) image URLs are refused: images are never fetched "
                                                   "from the network; give a path, a file:// URL or a data:image base64 URL")
        if value.startswith("data:") and not (value.startswith("data:image") and "base64," in value):
            raise ChatInputError(f"{field}.{key}", "a data URL must be data:image/<format>;base64,<data>")
        if not value.strip():
            raise ChatInputError(f"{field}.{key}", "empty image path")
    elif not isinstance(value, Image.Image):
        raise ChatInputError(f"{field}.{key}", f"an image is a path, a file:// or data:image URL, or a PIL image; "
                                               f"got {type(value).__name__}")
    bounds = {name: _pixel_bound(item.get(name), f"{field}.{name}") for name in ("min_pixels", "max_pixels")}
    if None not in bounds.values() and bounds["min_pixels"] > bounds["max_pixels"]:
        raise ChatInputError(field, f"min_pixels={bounds['min_pixels']} > max_pixels={bounds['max_pixels']}")
    return ImageEntry(f"{field}.{key}", value, **bounds)


def _pixel_bound(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ChatInputError(field, f"must be a positive integer, got {value!r}")
    return value


def vision_image(
    entry: ImageEntry, budget: VisionBudget, image: Image.Image | None = None, base_dir: Path | None = None
) -> Image.Image:
    """One image through `process_vision_info` (RGB, smart-resized within `budget.bounds(entry)`).

    `image`: the entry's image already opened by the caller (the server opens files and data URLs
    under its own limits), else process_vision_info reads the value; a relative path is taken under
    `base_dir` when given.

    Against the collator's resize (`fit_to_budget`: transformers' smart_resize, then PIL bicubic),
    process_vision_info's (qwen_vl_utils' smart_resize, then PIL's default, bicubic) gives the same
    pixels except in two edge cases, the only differences an exhaustive check found over
    1..699 x 1..699 pixels, factors (patch_size * 2) 28 and 32 and five budgets. Both round each side
    to the nearest multiple of the factor, floor when over max_pixels, ceil when under min_pixels, and
    refuse an aspect ratio over 200; but (1) a side <= factor / 2 rounds to 0 in transformers, which
    then scales the image up to min_pixels, while qwen_vl_utils first clamps it to one factor (a
    smaller image: 300x5 at min_pixels 3136 becomes 448 wide, against 288 at factor 32 and 308 at
    factor 28); (2) shrinking a thin image floors its
    short side to 0 in qwen_vl_utils (refused here, naming the item), while transformers clamps it to
    one factor, over max_pixels. Apart from the resize, process_vision_info pastes an RGBA image on
    white where `load_rgb` drops the alpha channel (transparent pixels keep their colour).
    """
    from qwen_vl_utils import process_vision_info, smart_resize

    low, high = budget.bounds(entry)
    value = image if image is not None else entry.value
    if isinstance(value, str) and base_dir is not None and entry.local_path is not None:
        if not entry.local_path.is_absolute():
            value = str(Path(base_dir) / entry.local_path)
    if isinstance(value, Image.Image):
        try:
            size = smart_resize(value.height, value.width, budget.factor, low, high)
        except ValueError as err:
            raise ChatInputError(entry.field, f"unusable image size {value.width}x{value.height}: {err}") from None
        if 0 in size:
            raise ChatInputError(entry.field, f"image of {value.width}x{value.height} is too elongated for "
                                              f"max_pixels={high}: process_vision_info would shrink a side to 0")
    element = {"type": "image", "image": value, "min_pixels": low, "max_pixels": high}
    try:
        images, _ = process_vision_info([{"role": "user", "content": [element]}], image_patch_size=budget.patch_size)
    # Missing file, not an image, bad base64, corrupt data, a 0 side, an aspect ratio over 200.
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ChatInputError(entry.field, f"process_vision_info could not read or resize the image: "
                                          f"{type(err).__name__}: {err}") from None
    return images[0]


def record_from_messages(
    messages: object, budget: VisionBudget, sample_id: str, *, where: str | None = None,
    base_dir: Path | None = None, require_critique: bool = False,
) -> EditRecord:
    """An EditRecord holding the two process_vision_info images in `meta[IMAGES_KEY]` (read by
    `PreloadedCollator`); its image paths are the files named in the messages, or placeholders."""
    where = where or sample_id
    edit = split_edit_messages(messages, where)
    if require_critique and edit.critique is None:
        raise ChatInputError(where, "no critique to score: give it as an assistant message after the user message")
    images = tuple(vision_image(entry, budget, base_dir=base_dir) for entry in (edit.source, edit.edited))
    paths = [entry.local_path or Path(f"<{entry.field}>") for entry in (edit.source, edit.edited)]
    return EditRecord(
        pair_id=sample_id, source_id=sample_id, source_image=paths[0], edited_image=paths[1],
        instruction=edit.instruction, critique=edit.critique, meta={IMAGES_KEY: images},
    )


class PreloadedCollator(EditCollator):
    """EditCollator that also takes records whose images are already decoded and resized
    (`meta[IMAGES_KEY]`: by process_vision_info, or `RewardScoring.prepare_record`'s fit).

    Those images are not fitted again: smart_resize is idempotent only for sizes inside
    [min_pixels, max_pixels], and a shrink that floors below min_pixels flips size on every
    application (100x70 in [3136, 4096] at factor 32: 64x32, then 96x64, then 64x32). One resize
    here and the processor's own one is exactly what `EditCollator` does with a file.
    """

    def load_pair(self, record: EditRecord) -> list[Image.Image]:
        images = record.meta.get(IMAGES_KEY)
        if images is None:
            return super().load_pair(record)
        return list(images)
