"""Admitting a score request: bounded work before any pixel is decoded or any item is parsed.

Order of checks, cheapest first:
1. the body (already capped by `BodyLimitMiddleware`) parses as JSON with an `items` list of at
   most `max_items_per_request` entries: counted before pydantic validates a single item;
2. pydantic validation of the items, then text lengths (`check_request_limits`);
3. every image is opened lazily (format allow-list, bytes and per-image pixels from its header);
4. the request's pixels summed over its images are within `max_request_pixels` (413);
5. the request reserves its pixels from the server-wide `DecodeBudget` (waiting while other
   requests decode), and only then decodes and budget-fits its images.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence

from PIL import Image
from pydantic import ValidationError

from ie_eval.data.collate import CollateError
from ie_eval.data.records import EditRecord
from ie_eval.serve.base import RewardItem
from ie_eval.serve.config import ServeConfig
from ie_eval.serve.errors import validation_message
from ie_eval.serve.images import InputError, decode_opened, open_base64_image, open_image_path
from ie_eval.serve.schemas import ImageInput, ScoreItem, ScoreRequest
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


def check_request_limits(request: ScoreRequest, config: ServeConfig) -> None:
    """Text lengths per item; the first violation raises InputError naming field and limit."""
    for index, item in enumerate(request.items):
        for name, limit_name in (("instruction", "max_instruction_chars"), ("critique", "max_critique_chars")):
            text, limit = getattr(item, name), getattr(config, limit_name)
            if len(text) > limit:
                raise InputError(f"items.{index}.{name}", f"{len(text)} characters > {limit_name}={limit}")


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


def open_image(image: ImageInput, field: str, config: ServeConfig) -> Opened:
    """A request image, opened lazily by whichever way it was given (exactly one, per the schema)."""
    if image.base64 is not None:
        return open_base64_image(image.base64, f"{field}.base64", config), f"{field}.base64"
    return open_image_path(image.path or "", f"{field}.path", config), f"{field}.path"


def open_request_images(items: Sequence[ScoreItem], config: ServeConfig) -> list[tuple[Opened, Opened]]:
    """Every item's (source, edited) opened lazily, then the request's pixel sum checked (413)."""
    opened = [
        (open_image(item.source_image, f"items.{i}.source_image", config),
         open_image(item.edited_image, f"items.{i}.edited_image", config))
        for i, item in enumerate(items)
    ]
    pixels = request_pixels(opened)
    if pixels > config.max_request_pixels:
        raise InputError("items", f"images total {pixels} pixels > max_request_pixels={config.max_request_pixels}", status=413)
    return opened


def request_pixels(opened: Sequence[tuple[Opened, Opened]]) -> int:
    return sum(image.width * image.height for pair in opened for image, _ in pair)


def decode_records(
    items: Sequence[ScoreItem], opened: Sequence[tuple[Opened, Opened]], scoring: RewardScoring,
) -> list[EditRecord]:
    """Decode and budget-fit the opened images, then build the records (off the model's thread)."""
    records = []
    for index, (item, images) in enumerate(zip(items, opened, strict=True)):
        where = f"items.{index}"
        pair = [fitted(image, field, scoring) for image, field in images]
        try:
            records.append(scoring.prepare_record(RewardItem(pair[0], pair[1], item.instruction, item.critique), where))
        except CollateError as err:
            message = str(err).removeprefix(f"{where}: ")
            name = "instruction" if message.startswith("instruction") else "critique"
            raise InputError(f"{where}.{name}", message) from None
    return records


def fitted(image: Image.Image, field: str, scoring: RewardScoring) -> Image.Image:
    """Decode one image and resize it to the model's pixel budget (unusable shapes: 422, naming
    the image rather than its encoding)."""
    decoded = decode_opened(image, field)
    image_field = field.rsplit(".", 1)[0]
    try:
        return scoring.fit(decoded, image_field)
    except CollateError as err:
        raise InputError(image_field, f"unusable image size: {str(err).removeprefix(image_field + ': ')}") from None
