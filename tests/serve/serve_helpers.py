"""Payload builders shared by the serve tests (imported as `serve_helpers`: tests/ has no packages)."""

import base64
import io

TINY_PIXELS = 64 * 64
# Small limits: each limit test crosses one with a few kilobytes.
TEST_LIMITS = {
    "max_body_bytes": 300_000,
    "max_image_bytes": 60_000,
    "max_image_pixels": 256 * 256,
    "max_critique_chars": 2000,
    "max_instruction_chars": 200,
    "max_items_per_request": 8,
    "torch_threads": 1,  # the model worker's own setting: 2 OpenMP threads thrash on 2 shared cores
}


def png_bytes(size=(64, 64), color=(200, 30, 30), seed=0):
    """A PNG with a coloured square shifted by `seed`, so different seeds give different images."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, "white")
    offset = seed % 16
    ImageDraw.Draw(image).rectangle((8 + offset, 8, 8 + offset + size[0] // 2, 8 + size[1] // 2), fill=color)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data):
    return base64.b64encode(data).decode("ascii")


def item_json(critique="[Visual Quality]\nSharp.\n[Final Assessment]\nVisual Quality: 4", seed=0, **overrides):
    """One valid /v1/score item (base64 images); `overrides` replace fields."""
    item = {
        "source_image": {"base64": b64(png_bytes(seed=seed))},
        "edited_image": {"base64": b64(png_bytes(color=(30, 30, 200), seed=seed + 3))},
        "instruction": "make the red square blue",
        "critique": critique,
    }
    item.update(overrides)
    return item


def reward_item(critique, seed=0):
    """The RewardItem equal to item_json(critique, seed)."""
    from PIL import Image

    from ie_eval.serve.base import RewardItem

    source = Image.open(io.BytesIO(png_bytes(seed=seed))).convert("RGB")
    edited = Image.open(io.BytesIO(png_bytes(color=(30, 30, 200), seed=seed + 3))).convert("RGB")
    return RewardItem(source, edited, "make the red square blue", critique)


def noise_png(size):
    """An incompressible PNG: its byte size grows with its pixel count."""
    import random

    from PIL import Image

    rng = random.Random(0)
    image = Image.frombytes("RGB", size, bytes(rng.getrandbits(8) for _ in range(size[0] * size[1] * 3)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def load_scoring(model_dir, batch_size=32, **scoring_kwargs):
    """A RewardScoring over a fresh copy of the saved model."""
    from ie_eval.models.reward_model import RewardModel
    from ie_eval.serve.scoring import RewardScoring

    model = RewardModel.from_pretrained(model_dir)
    return RewardScoring(model, batch_size=batch_size, max_pixels=TINY_PIXELS, **scoring_kwargs)


def make_app(scoring, image_root=None, **config_overrides):
    """create_app over `scoring` with the test limits (+ overrides)."""
    from ie_eval.serve.app import create_app
    from ie_eval.serve.config import ServeConfig

    values = {**TEST_LIMITS, "max_pixels": TINY_PIXELS, "image_root": str(image_root) if image_root else None}
    return create_app(scoring, ServeConfig(**{**values, **config_overrides}))
