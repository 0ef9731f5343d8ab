"""Turn request images (base64 or a path under the image root) into PIL images, within limits.

Every check happens before pixels are decoded: encoded size first, then the header's
width x height, so a small file that would decode to a huge image is refused cheaply.
Each refusal is an `InputError` naming the request field and the limit.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from pathlib import Path

from PIL import Image

from ie_eval.serve.config import ServeConfig


class InputError(ValueError):
    """A refused request field: HTTP `status`, the dotted `field` path and a message with the limit."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


def decode_base64_image(data: str, field: str, config: ServeConfig) -> Image.Image:
    """Base64 text -> RGB image; refuses oversized, corrupt or non-image data naming `field`."""
    limit = config.max_image_bytes
    # 4 base64 characters per 3 bytes (+ padding and line breaks some encoders add).
    if len(data) > (limit + 2) // 3 * 4 + len(data) // 76 + 4:
        raise InputError(field, f"encoded image is over max_image_bytes={limit} bytes", status=413)
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise InputError(field, f"not valid base64: {err}") from None
    if len(raw) > limit:
        raise InputError(field, f"image is {len(raw)} bytes > max_image_bytes={limit}", status=413)
    return decode_image_bytes(raw, field, config)


def load_image_path(path_text: str, field: str, config: ServeConfig) -> Image.Image:
    """A file under `config.image_root` -> RGB image; paths resolving outside it are refused."""
    file = resolve_under_root(path_text, field, config.image_root)
    raw = read_capped(file, field, config.max_image_bytes)
    return decode_image_bytes(raw, field, config)


def read_capped(file: Path, field: str, limit: int) -> bytes:
    """At most `limit` bytes of `file`, refusing a larger file; a symlink swapped in after the
    containment check is not followed (O_NOFOLLOW)."""
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as err:
        raise InputError(field, f"cannot read image file: {err.strerror}", status=404) from None
    if len(raw) > limit:
        raise InputError(field, f"image file is over max_image_bytes={limit} bytes", status=413)
    return raw


def resolve_under_root(path_text: str, field: str, image_root: str | None) -> Path:
    """The real path of a regular file inside `image_root` (symlinks and `..` resolved), else InputError."""
    if image_root is None:
        raise InputError(field, "path inputs are disabled (no image_root configured); send base64", status=403)
    if not path_text or "\x00" in path_text:
        raise InputError(field, "empty path or NUL byte in path")
    root = Path(image_root).resolve()
    candidate = Path(path_text)
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        resolved = candidate.resolve()  # follows every symlink that exists and folds '..'
    except (OSError, RuntimeError):  # symlink loop, name too long, ...
        raise InputError(field, f"cannot resolve path {path_text!r}") from None
    # Containment first: whether a file outside the root exists is none of the client's business.
    if not resolved.is_relative_to(root):
        raise InputError(field, f"path {path_text!r} resolves outside image_root; refused", status=403)
    if not resolved.is_file() or not os.access(resolved, os.R_OK):
        raise InputError(field, f"no such image file under image_root (or not a readable file): {path_text!r}", status=404)
    return resolved


def peek_pixels(data: str) -> int:
    """width * height from a base64 image's header, without decoding pixels; 0 if unreadable
    (the real decode then refuses it with a proper message)."""
    try:
        with Image.open(io.BytesIO(base64.b64decode("".join(data.split()), validate=True))) as image:
            return image.width * image.height
    except Exception:  # any garbage: not this function's job to explain it
        return 0


def decode_image_bytes(raw: bytes, field: str, config: ServeConfig) -> Image.Image:
    """Encoded image bytes -> RGB image, refusing more than max_image_pixels before decoding."""
    limit = config.max_image_pixels
    try:
        image = Image.open(io.BytesIO(raw))
        width, height = image.size
    except Image.DecompressionBombError:
        raise InputError(field, f"image is over max_image_pixels={limit}", status=413) from None
    except Exception as err:  # PIL raises many types on garbage input; all mean "not an image"
        raise InputError(field, f"not a decodable image: {type(err).__name__}") from None
    if width * height > limit:
        raise InputError(field, f"image is {width}x{height} = {width * height} pixels > max_image_pixels={limit}", status=413)
    if width < 1 or height < 1:
        raise InputError(field, f"image has an empty size {width}x{height}")
    try:
        return image.convert("RGB")
    except Exception as err:  # truncated or corrupt pixel data shows up only when decoding
        raise InputError(field, f"image data is corrupt: {type(err).__name__}: {err}") from None
