"""Admitting a score request: bounded work before any pixel is decoded or any item is parsed.

Order of checks, cheapest first:
1. the body (already capped by `BodyLimitMiddleware`) parses as JSON with an `items` list of at
   most `max_items_per_request` entries: counted before pydantic validates a single item;
2. pydantic validation of the items; chat-message items are read into the same `EditInput` as
   field items (`edit_inputs`), then text lengths are checked (`check_request_limits`);
3. every image is opened lazily (format allow-list, bytes and per-image pixels from its header);
4. the request's pixels summed over its images are within `max_request_pixels` (413);
5. the request reserves its pixels from the server-wide `DecodeBudget` (waiting while other
   requests decode), and only then decodes and budget-fits its images (chat images: through
   qwen_vl_utils.process_vision_info, within the same budget).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from PIL import Image
from pydantic import ValidationError

from ie_eval.data.chat_inputs import (
    ChatInputError,
    ImageEntry,
    VisionBudget,
    split_edit_messages,
    vision_image,
)
from ie_eval.data.collate import CollateError
from ie_eval.data.records import EditRecord
from ie_eval.serve.base import RewardItem
from ie_eval.serve.config import ServeConfig
from ie_eval.serve.errors import validation_message
from ie_eval.serve.images import InputError, decode_opened, open_base64_image, open_image_path
from ie_eval.serve.schemas import ChatItem, ImageInput, ScoreItem, ScoreRequest
from ie_eval.serve.scoring import RewardScoring


def parse_score_request(body: bytes, config: ServeConfig) -> ScoreRequest:
    """JSON body -> ScoreRequest, refusing too many items before any item is validated."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError("body", f"not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise InputError("body", f"must be a JSON object with an 'items' list, got {type(data).__name__}")
    items = data.get("items")
    if isinstance(items, list) and len(items) > config.max_items_per_request:
        raise InputError("items", f"{len(items)} items > max_items_per_request={config.max_items_per_request}")
    try:
        return ScoreRequest.model_validate(data)
    except ValidationError as err:
        field, detail = validation_message(list(err.errors()))
        raise InputError(field, detail.removeprefix(f"{field}: ")) from None


@dataclass(frozen=True)
class ImageSource:
    """A request image: `field` names the image, `source_field` where its bytes are (base64 or
    path); `entry` is set for a chat image, resized by process_vision_info within its bounds."""

    field: str
    source_field: str
    base64: str | None = None
    path: str | None = None
    entry: ImageEntry | None = None


@dataclass(frozen=True)
class EditInput:
    """One request item, whichever form it came in, with the request fields of its parts."""

    images: tuple[ImageSource, ImageSource]
    instruction: str
    instruction_field: str
    critique: str
    critique_field: str


def edit_inputs(request: ScoreRequest) -> list[EditInput]:
    """The request's items as EditInputs; a chat item breaking the convention is a 422 naming the part."""
    return [
        chat_input(item, f"items.{i}") if isinstance(item, ChatItem) else fields_input(item, f"items.{i}")
        for i, item in enumerate(request.items)
    ]


def fields_input(item: ScoreItem, where: str) -> EditInput:
    images = (field_image(item.source_image, f"{where}.source_image"),
              field_image(item.edited_image, f"{where}.edited_image"))
    return EditInput(images, item.instruction, f"{where}.instruction", item.critique, f"{where}.critique")


def field_image(image: ImageInput, field: str) -> ImageSource:
    way = "base64" if image.base64 is not None else "path"
    return ImageSource(field, f"{field}.{way}", base64=image.base64, path=image.path)


def chat_input(item: ChatItem, where: str) -> EditInput:
    messages = [message.model_dump() for message in item.messages]
    try:
        edit = split_edit_messages(messages, f"{where}.messages")
    except ChatInputError as err:
        raise InputError(err.field, err.message) from None
    if edit.critique is None or edit.critique_field is None:
        raise InputError(f"{where}.messages", "no critique to score: give it as an assistant message after the user message")
    return EditInput((chat_image(edit.source), chat_image(edit.edited)), edit.instruction, edit.instruction_field,
                     edit.critique, edit.critique_field)


def chat_image(entry: ImageEntry) -> ImageSource:
    """A data:image URL is base64 bytes, anything else (path or file:// URL) a path under image_root."""
    value = str(entry.value)
    if value.startswith("data:"):
        return ImageSource(entry.field, entry.field, base64=value.split("base64,", 1)[1], entry=entry)
    return ImageSource(entry.field, entry.field, path=value.removeprefix("file://"), entry=entry)


def check_request_limits(items: Sequence[EditInput], config: ServeConfig) -> None:
    """Text lengths per item; the first violation raises InputError naming field and limit."""
    for item in items:
        for name, field, limit_name in (("instruction", item.instruction_field, "max_instruction_chars"),
                                        ("critique", item.critique_field, "max_critique_chars")):
            text, limit = getattr(item, name), getattr(config, limit_name)
            if len(text) > limit:
                raise InputError(field, f"{len(text)} characters > {limit_name}={limit}")


class DecodeBudget:
    """Pixels being decoded at once across the server; a request waits for room before decoding."""

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.in_flight = 0
        self._room = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def reserve(self, pixels: int) -> AsyncIterator[None]:
        if pixels > self.capacity:
            raise InputError("items", f"{pixels} pixels > max_decode_pixels_in_flight={self.capacity}", status=413)
        async with self._room:
            await self._room.wait_for(lambda: self.in_flight + pixels <= self.capacity)
            self.in_flight += pixels
        try:
            yield
        finally:
            async with self._room:
                self.in_flight -= pixels
                self._room.notify_all()


# An opened (not yet decoded) request image and the request field it came from.
Opened = tuple[Image.Image, str]


def open_image(image: ImageSource, config: ServeConfig) -> Opened:
    """A request image, opened lazily by whichever way it was given (exactly one, per the schema)."""
    if image.base64 is not None:
        return open_base64_image(image.base64, image.source_field, config), image.source_field
    return open_image_path(image.path or "", image.source_field, config), image.source_field


def open_request_images(items: Sequence[EditInput], config: ServeConfig) -> list[tuple[Opened, Opened]]:
    """Every item's (source, edited) opened lazily, then the request's pixel sum checked (413)."""
    opened = [(open_image(item.images[0], config), open_image(item.images[1], config)) for item in items]
    pixels = request_pixels(opened)
    if pixels > config.max_request_pixels:
        raise InputError("items", f"images total {pixels} pixels > max_request_pixels={config.max_request_pixels}", status=413)
    return opened


def request_pixels(opened: Sequence[tuple[Opened, Opened]]) -> int:
    return sum(image.width * image.height for pair in opened for image, _ in pair)


def decode_records(
    items: Sequence[EditInput], opened: Sequence[tuple[Opened, Opened]], scoring: RewardScoring,
) -> list[EditRecord]:
    """Decode and budget-fit the opened images, then build the records (off the model's thread)."""
    records = []
    for index, (item, images) in enumerate(zip(items, opened, strict=True)):
        where = f"items.{index}"
        pair = [fitted(image, source, scoring) for (image, _), source in zip(images, item.images, strict=True)]
        try:
            records.append(scoring.prepare_record(RewardItem(pair[0], pair[1], item.instruction, item.critique), where))
        except CollateError as err:
            message = str(err).removeprefix(f"{where}: ")
            field = item.instruction_field if message.startswith("instruction") else item.critique_field
            raise InputError(field, message) from None
    return records


def fitted(image: Image.Image, source: ImageSource, scoring: RewardScoring) -> Image.Image:
    """Decode one image and resize it to the model's pixel budget (unusable shapes: 422, naming
    the image rather than its encoding); a chat image is resized by process_vision_info."""
    if source.entry is not None:
        decoded = decode_opened(image, source.source_field, mode=None)  # its RGB conversion is process_vision_info's
        try:
            return vision_image(source.entry, VisionBudget.of(scoring.collator), image=decoded)
        except ChatInputError as err:
            raise InputError(err.field, err.message) from None
    decoded = decode_opened(image, source.source_field)
    try:
        return scoring.fit(decoded, source.field)
    except CollateError as err:
        raise InputError(source.field, f"unusable image size: {str(err).removeprefix(source.field + ': ')}") from None
