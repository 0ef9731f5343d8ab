"""Whole-image pixel operations: degradations, restorations gone wrong, lighting and style filters.

Every function maps an RGB uint8 array (H, W, 3) to a new one and is deterministic given its
arguments (noise takes an explicit seed), so a degradation can be re-applied at half strength.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def blend(a: np.ndarray, b: np.ndarray, weight_b: float) -> np.ndarray:
    """(1 - w) a + w b: a partial edit sits between the source look and the requested look."""
    return to_uint8((1.0 - weight_b) * a.astype(np.float32) + weight_b * b.astype(np.float32))


def gaussian_blur(image: np.ndarray, radius: float) -> np.ndarray:
    if radius <= 0:
        return image
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))


def add_noise(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Additive Gaussian grain; the same seed gives the same grain at any sigma."""
    grain = np.random.default_rng(seed).normal(0.0, 1.0, image.shape).astype(np.float32)
    return to_uint8(image.astype(np.float32) + sigma * grain)


def add_haze(image: np.ndarray, strength: float) -> np.ndarray:
    """Atmospheric haze: blend toward a bright veil, lowering contrast."""
    veil = np.full_like(image, 232)
    return blend(image, veil, strength)


def darken(image: np.ndarray, exposure: float) -> np.ndarray:
    """Under-exposure: scale linear-ish intensity by `exposure` (< 1) with a gamma to crush shadows."""
    unit = image.astype(np.float32) / 255.0
    return to_uint8(255.0 * exposure * unit**1.3)


def pixelate(image: np.ndarray, factor: int) -> np.ndarray:
    """Low resolution shown at full size: box-downsample by `factor`, nearest-upsample back."""
    height, width = image.shape[:2]
    small = Image.fromarray(image).resize((max(1, width // factor), max(1, height // factor)), Image.BOX)
    return np.asarray(small.resize((width, height), Image.NEAREST))


def smooth_upsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Low resolution upsampled bilinearly: no blocks, but no detail either."""
    height, width = image.shape[:2]
    small = Image.fromarray(image).resize((max(1, width // factor), max(1, height // factor)), Image.BOX)
    return np.asarray(small.resize((width, height), Image.BILINEAR))


def jpeg_blocks(image: np.ndarray, quality: int) -> np.ndarray:
    """Blocky compression artifacts from a low-quality JPEG round trip."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def smudges(image: np.ndarray, severity: float, seed: int) -> np.ndarray:
    """Soft, discoloured blotches, like a generator's local failures; more and denser with severity."""
    rng = np.random.default_rng(seed)
    size = image.shape[0]
    out = image.astype(np.float32)
    for _ in range(3 + int(round(3 * severity))):
        canvas = Image.new("L", (size, size), 0)
        cx, cy = rng.uniform(0.1, 0.9, 2) * size
        rx, ry = rng.uniform(0.08, 0.18, 2) * size
        ImageDraw.Draw(canvas).ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        soft = np.asarray(canvas.filter(ImageFilter.GaussianBlur(size / 40)), dtype=np.float32) / 255.0
        alpha = (0.45 + 0.35 * severity) * soft[..., None]
        out = out * (1.0 - alpha) + rng.uniform(0, 255, 3).astype(np.float32) * alpha
    return to_uint8(out)


def visible_change(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two images differ visibly: >= 1% of pixels off by > 24 levels, or mean difference >= 2.5."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1)
    return bool((diff > 24).mean() >= 0.01 or diff.mean() >= 2.5)


def oversharpen(image: np.ndarray) -> np.ndarray:
    """Aggressive unsharp masking: halos and ringing around edges."""
    return np.asarray(
        Image.fromarray(image).filter(ImageFilter.UnsharpMask(radius=3, percent=400, threshold=0))
    )


def scale_contrast(image: np.ndarray, factor: float) -> np.ndarray:
    mean = image.astype(np.float32).mean(axis=(0, 1), keepdims=True)
    return to_uint8(mean + factor * (image.astype(np.float32) - mean))


def brightness(image: np.ndarray, factor: float) -> np.ndarray:
    return to_uint8(image.astype(np.float32) * factor)


def color_temperature(image: np.ndarray, amount: float) -> np.ndarray:
    """amount > 0 warms (more red, less blue); amount < 0 cools."""
    gains = np.asarray([1.0 + 0.25 * amount, 1.0 + 0.05 * amount, 1.0 - 0.3 * amount], dtype=np.float32)
    return to_uint8(image.astype(np.float32) * gains)


def grayscale(image: np.ndarray) -> np.ndarray:
    luma = image.astype(np.float32) @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
    return to_uint8(np.repeat(luma[..., None], 3, axis=-1))


def sepia(image: np.ndarray) -> np.ndarray:
    matrix = np.asarray(
        [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32
    )
    return to_uint8(image.astype(np.float32) @ matrix.T)


def posterize(image: np.ndarray, levels: int = 3) -> np.ndarray:
    """Quantize each channel to `levels` flat bands."""
    step = 255.0 / (levels - 1)
    return to_uint8(np.rint(image.astype(np.float32) / step) * step)
