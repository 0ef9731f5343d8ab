"""Turn request images (base64 or a path under the image root) into PIL images, within limits.

Every check happens before pixels are decoded: encoded size first, then the format (only
`ServeConfig.image_formats` are ever opened: Pillow tries no other plugin, so an EPS upload never
reaches Ghostscript), then the header's width x height, so a small file that would decode to a
huge image is refused cheaply. Each refusal is an `InputError` naming the request field and the limit.
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


# Leading bytes of formats that are images but not allowed, to answer 415 rather than "not an image".
_OTHER_FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"%!PS", "EPS"), (b"\xc5\xd0\xd3\xc6", "EPS"), (b"GIF8", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"), (b"%PDF", "PDF"), (b"\x00\x00\x01\x00", "ICO"), (b"P6", "PPM"), (b"\x89PNG", "PNG"),
    (b"\xff\xd8\xff", "JPEG"), (b"RIFF", "WEBP"),
)


def decode_base64_image(data: str, field: str, config: ServeConfig) -> Image.Image:
    """Base64 text -> RGB image; refuses oversized, corrupt or non-image data naming `field`."""
    return decode_opened(open_base64_image(data, field, config), field)


def base64_bytes(data: str, field: str, config: ServeConfig) -> bytes:
    """The bytes of a base64 image, refusing more than max_image_bytes (before decoding when possible)."""
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
    return raw


def open_base64_image(data: str, field: str, config: ServeConfig) -> Image.Image:
    """A base64 image opened lazily (header read, pixels not decoded), within every limit."""
    return open_image_bytes(base64_bytes(data, field, config), field, config)


def load_image_path(path_text: str, field: str, config: ServeConfig) -> Image.Image:
    """A file under `config.image_root` -> RGB image; paths resolving outside it are refused."""
    return decode_opened(open_image_path(path_text, field, config), field)


def open_image_path(path_text: str, field: str, config: ServeConfig) -> Image.Image:
    """A file under `config.image_root` opened lazily, within every limit."""
    file = resolve_under_root(path_text, field, config.image_root)
    return open_image_bytes(read_capped(file, field, config.max_image_bytes), field, config)


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


def sniff_format(raw: bytes) -> str | None:
    """The image format the leading bytes announce (a few common ones), or None."""
    for magic, name in _OTHER_FORMATS:
        if raw.startswith(magic) and (name != "WEBP" or raw[8:12] == b"WEBP"):
            return name
    return None


def open_image_bytes(raw: bytes, field: str, config: ServeConfig) -> Image.Image:
    """Encoded bytes opened lazily with the allowed formats only, refusing more than
    max_image_pixels from the header (no pixel is decoded here)."""
    limit, allowed = config.max_image_pixels, list(config.image_formats)
    try:
        image = Image.open(io.BytesIO(raw), formats=allowed)
        width, height = image.size
    except Image.DecompressionBombError:
        raise InputError(field, f"image is over max_image_pixels={limit}", status=413) from None
    except Exception as err:  # PIL raises many types on garbage input; all mean "not an image"
        announced = sniff_format(raw)
        if announced is not None and announced not in allowed:
            raise InputError(field, f"image format {announced} is not allowed (image_formats={allowed})", status=415) from None
        raise InputError(field, f"not a decodable image in the allowed formats {allowed}: {type(err).__name__}") from None
    if width * height > limit:
        raise InputError(field, f"image is {width}x{height} = {width * height} pixels > max_image_pixels={limit}", status=413)
    if width < 1 or height < 1:
        raise InputError(field, f"image has an empty size {width}x{height}")
    return image


def decode_opened(image: Image.Image, field: str, mode: str | None = "RGB") -> Image.Image:
    """Decode an opened image's pixels as `mode` (None: its own mode, for a converter of its own,
    such as process_vision_info's); corrupt pixel data shows up only now."""
    try:
        if mode is None:
            image.load()
            return image
        return image.convert(mode)
    except Exception as err:
        raise InputError(field, f"image data is corrupt: {type(err).__name__}: {err}") from None


def decode_image_bytes(raw: bytes, field: str, config: ServeConfig) -> Image.Image:
    """Encoded image bytes -> RGB image within every limit."""
    return decode_opened(open_image_bytes(raw, field, config), field)
