"""`ServeConfig`: every knob and limit of the reward server, with its one default.

A YAML or JSON file (`ie-eval serve-rm --config FILE`) overrides any subset of fields;
command-line flags override the file. Unknown keys and out-of-range values are errors naming
the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Fields that must be strictly positive numbers.
_POSITIVE_FIELDS: tuple[str, ...] = (
    "max_batch_size",
    "max_queue",
    "request_timeout_s",
    "max_body_bytes",
    "max_image_bytes",
    "max_image_pixels",
    "max_critique_chars",
    "max_instruction_chars",
    "max_items_per_request",
    "retry_after_s",
    "max_request_pixels",
    "max_decode_pixels_in_flight",
    "max_connections",
    "unhealthy_after_failures",
)
# Formats Pillow may decode; every other format (EPS runs Ghostscript, ...) is refused unopened.
IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP")


class ServeConfigError(ValueError):
    """A config file or value that cannot configure the server; the message names the key."""


@dataclass(frozen=True)
class ServeConfig:
    """Reward-server settings. Sizes are bytes, times seconds unless the name says otherwise.

    Attributes:
        host / port: where to listen; loopback unless told otherwise.
        image_root: folder that image `path` inputs must resolve inside (symlinks and `..`
            resolved first); None refuses every path input (base64 only).
        reward_weights: (logicality, accuracy, usefulness) weights of the scalar reward;
            None uses the checkpoint's (default 0.3/0.4/0.3, ReasonEdit's public code; accuracy highest).
        max_batch_size: items per forward pass of the micro-batcher; 1 turns batching off.
        max_wait_ms: how long the batcher waits for more requests once it holds one.
        max_queue: requests waiting for the model; one more is answered 503 + Retry-After.
        request_timeout_s: a request not answered within this time (decoding and scoring
            included) is answered 503.
        retry_after_s: the Retry-After value sent with every 503.
        max_body_bytes: request body limit (413).
        max_image_bytes: encoded size limit of one image (decoded base64 or file size).
        max_image_pixels: width * height limit of one image, checked before decoding pixels.
        max_request_pixels: width * height summed over one request's images (413), from headers.
        max_decode_pixels_in_flight: pixels being decoded at once across the server; a request
            waits for room (within request_timeout_s, else 503) before it decodes anything.
        image_formats: Pillow formats a request image may have (others: 415, never decoded).
        max_connections: concurrent connections uvicorn accepts (`limit_concurrency`; more: 503).
        api_key_file: file holding a bearer token every request must send (`Authorization:
            Bearer <token>`, else 401); required when `host` is not a loopback address.
        unhealthy_after_failures: /healthz answers 503 once this many batches in a row failed.
        max_critique_chars / max_instruction_chars: text limits in characters.
        max_items_per_request: items one request may carry.
        max_pixels: per-image pixel budget the collator resizes to; None keeps the collator's.
        max_length: longest prompt in tokens; None keeps the collator's.
        share_prefixes: score the critiques of one edit with their shared prefix (images and
            instruction) run once; None keeps RewardScoring's default (on; exact to float rounding).
        device: torch device the model runs on.
        torch_threads: intra-op CPU threads of the model's worker thread (None: torch's default;
            the setting is per thread, the rest of the process keeps its own). On a small or
            shared CPU box 1 stops OpenMP workers spin-waiting against the event loop.
        inline_decode_max_bytes / inline_decode_max_pixels: a request whose base64 images total
            at most this many characters and pixels is decoded on the event loop (cheaper than a
            thread hop); larger ones and path inputs are decoded in a worker thread so the loop
            keeps serving.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    image_root: str | None = None
    reward_weights: tuple[float, float, float] | None = None
    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256
    request_timeout_s: float = 30.0
    retry_after_s: int = 1
    max_body_bytes: int = 16 * 1024 * 1024
    max_image_bytes: int = 4 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    max_request_pixels: int = 64 * 1024 * 1024
    max_decode_pixels_in_flight: int = 128 * 1024 * 1024
    image_formats: tuple[str, ...] = IMAGE_FORMATS
    max_connections: int = 64
    api_key_file: str | None = None
    unhealthy_after_failures: int = 3
    max_critique_chars: int = 8000
    max_instruction_chars: int = 1000
    max_items_per_request: int = 64
    max_pixels: int | None = None
    max_length: int | None = None
    share_prefixes: bool | None = None
    device: str = "cpu"
    torch_threads: int | None = None
    inline_decode_max_bytes: int = 65536
    inline_decode_max_pixels: int = 1_000_000

    def __post_init__(self) -> None:
        for name in _POSITIVE_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ServeConfigError(f"ServeConfig.{name} must be a positive number, got {value!r}")
        if not 0 <= self.port <= 65535:
            raise ServeConfigError(f"ServeConfig.port must be in 0..65535, got {self.port!r}")
        for name in ("max_wait_ms", "inline_decode_max_bytes", "inline_decode_max_pixels"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise ServeConfigError(f"ServeConfig.{name} must be a number >= 0, got {value!r}")
        if self.torch_threads is not None and not (isinstance(self.torch_threads, int) and self.torch_threads >= 1):
            raise ServeConfigError(f"ServeConfig.torch_threads must be None or an int >= 1, got {self.torch_threads!r}")
        if self.share_prefixes is not None and not isinstance(self.share_prefixes, bool):
            raise ServeConfigError(f"ServeConfig.share_prefixes must be true, false or null, got {self.share_prefixes!r}")
        if self.reward_weights is not None:
            object.__setattr__(self, "reward_weights", check_reward_weights(self.reward_weights))
        formats = tuple(str(f).upper() for f in self.image_formats) if not isinstance(self.image_formats, str) else ()
        if not formats:
            raise ServeConfigError(f"ServeConfig.image_formats must be a non-empty list of formats, got {self.image_formats!r}")
        object.__setattr__(self, "image_formats", formats)
        if self.max_request_pixels > self.max_decode_pixels_in_flight:
            raise ServeConfigError(
                f"ServeConfig.max_request_pixels={self.max_request_pixels} exceeds max_decode_pixels_in_flight="
                f"{self.max_decode_pixels_in_flight}: such a request could never decode"
            )

    def limits(self) -> dict[str, int | float]:
        """The request limits clients must respect (reported by GET /v1/info)."""
        names = (
            "max_body_bytes", "max_image_bytes", "max_image_pixels", "max_critique_chars",
            "max_instruction_chars", "max_items_per_request", "max_batch_size", "max_queue",
            "request_timeout_s", "max_request_pixels", "max_connections",
        )
        return {name: getattr(self, name) for name in names}


def check_reward_weights(weights: Any) -> tuple[float, float, float]:
    """Three finite, non-negative weights with a positive sum, as floats."""
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__") or len(weights) != 3:
        raise ServeConfigError(f"ServeConfig.reward_weights must be 3 numbers, got {weights!r}")
    try:
        values = tuple(float(w) for w in weights)
    except (TypeError, ValueError):
        raise ServeConfigError(f"ServeConfig.reward_weights must be numbers, got {weights!r}") from None
    if not all(math.isfinite(w) and w >= 0 for w in values) or sum(values) <= 0:
        raise ServeConfigError(f"ServeConfig.reward_weights must be finite, >= 0, not all 0: {weights!r}")
    return values  # type: ignore[return-value]


def config_from_mapping(values: Mapping[str, Any], base: ServeConfig | None = None) -> ServeConfig:
    """`base` (default ServeConfig()) with `values` replacing fields; unknown keys raise."""
    known = {f.name for f in dataclasses.fields(ServeConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ServeConfigError(f"unknown ServeConfig key(s) {unknown}; known: {sorted(known)}")
    try:
        return dataclasses.replace(base or ServeConfig(), **dict(values))
    except TypeError as err:
        raise ServeConfigError(f"bad ServeConfig value: {err}") from err


def load_serve_config(path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> ServeConfig:
    """ServeConfig from a YAML/JSON file (or defaults when path is None), then `overrides`."""
    values: dict[str, Any] = {}
    if path is not None:
        values = read_config_file(Path(path))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return config_from_mapping(values)


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping in a .json, .yaml or .yml file; a missing file or non-mapping raises naming it."""
    if not path.is_file():
        raise ServeConfigError(f"{path}: serve config file not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ServeConfigError(f"{path}: serve config must be a mapping of ServeConfig keys, got {type(data).__name__}")
    return data
