"""`RewardClient`: the HTTP reward server behind the `RewardScorer` interface.

Items are sent in requests of at most `batch_size`, up to `max_concurrency` at a time; 503s
(honouring Retry-After), 502/504 and connection errors are retried with exponential backoff.
Results come back in item order, complete, or `RewardServerError` is raised: never a partial list.
"""

from __future__ import annotations

import base64
import io
import math
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from ie_eval.serve.base import ImageLike, RewardItem, RewardScores, RewardServerError

__all__ = ["RewardClient", "RewardServerError", "encode_item"]

RETRY_STATUSES = frozenset({502, 503, 504})


class RewardClient:
    """Scores critiques on a reward server (`ie-eval serve-rm`).

    url: server base URL, e.g. "http://127.0.0.1:8000". batch_size: items per request (keep
        it at or under the server's max_items_per_request). timeout_s: per HTTP request.
    max_retries: retries per request after the first try; backoff_s doubles per retry up to
        max_backoff_s (with jitter), or follows the server's Retry-After when larger. GRPO uses 0:
        its `ReRewardTerm` is the one retry layer.
    api_key: bearer token of a server started with --api-key-file.
    send_paths: send path images as paths (the server must share the filesystem and have an
        image_root containing them); otherwise their file bytes are sent as base64.
    """

    def __init__(
        self,
        url: str,
        batch_size: int = 32,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        max_concurrency: int = 4,
        send_paths: bool = False,
        transport: httpx.BaseTransport | None = None,
        api_key: str | None = None,
    ) -> None:
        if batch_size < 1 or max_concurrency < 1 or max_retries < 0:
            raise ValueError(
                f"RewardClient: batch_size ({batch_size}) and max_concurrency ({max_concurrency}) must be >= 1, "
                f"max_retries ({max_retries}) >= 0"
            )
        self.url = url.rstrip("/")
        self.batch_size, self.max_concurrency = int(batch_size), int(max_concurrency)
        self.max_retries, self.backoff_s, self.max_backoff_s = int(max_retries), float(backoff_s), float(max_backoff_s)
        self.send_paths = send_paths
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self.http = httpx.Client(base_url=self.url, timeout=timeout_s, limits=limits, transport=transport, headers=headers)
        self.timeout_s = float(timeout_s)
        self._request_timeout: float | None = None

    # --- RewardScorer -----------------------------------------------------------------
    def score(self, items: Sequence[RewardItem]) -> list[RewardScores]:
        """One `RewardScores` per item, in order; raises RewardServerError if any request finally fails."""
        chunks = [list(items[i : i + self.batch_size]) for i in range(0, len(items), self.batch_size)]
        if len(chunks) <= 1 or self.max_concurrency == 1:
            per_chunk = [self.score_chunk(chunk) for chunk in chunks]
        else:
            with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(chunks))) as pool:
                per_chunk = list(pool.map(self.score_chunk, chunks))  # map keeps chunk order
        return [scores for chunk in per_chunk for scores in chunk]

    def score_within(self, items: Sequence[RewardItem], seconds: float) -> list[RewardScores]:
        """`score`, each HTTP request given at most `seconds` (a caller's remaining deadline)."""
        self._request_timeout = max(0.001, min(self.timeout_s, float(seconds)))
        try:
            return self.score(items)
        finally:
            self._request_timeout = None

    def score_chunk(self, items: Sequence[RewardItem]) -> list[RewardScores]:
        """One request (with retries) for at most `batch_size` items."""
        payload = {"items": [encode_item(item, self.send_paths) for item in items]}
        body = self.post_with_retries("/v1/score", payload)
        return parse_results(body, len(items), self.url)

    # --- HTTP with retries ------------------------------------------------------------
    def post_with_retries(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST `payload`; retry 502/503/504 and transport errors, raise on anything else."""
        last_error, last_status, last_retry_after = "", None, None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.delay(attempt, last_retry_after))
            last_retry_after = None
            try:
                timeout = self._request_timeout if self._request_timeout is not None else self.timeout_s
                response = self.http.post(path, json=payload, timeout=timeout)
            except httpx.TransportError as err:  # connect, read, write, timeout, protocol errors
                last_error, last_status = f"{type(err).__name__}: {err}", None
                continue
            if response.status_code == 200:
                return json_body(response, f"{self.url}{path}")
            detail, field = error_detail(response)
            if response.status_code not in RETRY_STATUSES:
                raise RewardServerError(
                    f"{self.url}{path} refused the request ({response.status_code}): {detail}",
                    status=response.status_code, field=field,
                )
            last_error, last_status = f"{response.status_code}: {detail}", response.status_code
            last_retry_after = retry_after_seconds(response)
        raise RewardServerError(
            f"{self.url}{path} failed after {self.max_retries + 1} attempts; last error: {last_error}",
            status=last_status,
        )

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Backoff before retry `attempt` (1-based): jittered exponential, at least Retry-After, capped."""
        backoff = self.backoff_s * (2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        return min(max(backoff, retry_after or 0.0), self.max_backoff_s)

    # --- other endpoints --------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self.get_json("/healthz")

    def info(self) -> dict[str, Any]:
        return self.get_json("/v1/info")

    def get_json(self, path: str) -> dict[str, Any]:
        try:
            response = self.http.get(path)
        except httpx.TransportError as err:
            raise RewardServerError(f"{self.url}{path}: {type(err).__name__}: {err}") from err
        if response.status_code != 200:
            detail, field = error_detail(response)
            raise RewardServerError(f"{self.url}{path} ({response.status_code}): {detail}", response.status_code, field)
        return json_body(response, f"{self.url}{path}")

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode_item(item: RewardItem, send_paths: bool = False) -> dict[str, Any]:
    """The JSON form of one item for POST /v1/score."""
    return {
        "source_image": encode_image(item.source_image, send_paths),
        "edited_image": encode_image(item.edited_image, send_paths),
        "instruction": item.instruction,
        "critique": item.critique,
    }


def encode_image(image: ImageLike, send_paths: bool) -> dict[str, str]:
    """{"path": ...} or {"base64": ...}: file bytes as they are, a PIL image as PNG."""
    if isinstance(image, (str, Path)):
        if send_paths:
            return {"path": str(image)}
        data = Path(image).read_bytes()
    elif isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
    else:
        raise TypeError(f"RewardItem image must be a PIL image or a path, got {type(image).__name__}")
    return {"base64": base64.b64encode(data).decode("ascii")}


def score_value(value: Any) -> float:
    """A score from JSON: null is how a non-finite float travels (pydantic writes NaN / inf as null)."""
    return math.nan if value is None else float(value)


def parse_results(body: Any, expected: int, url: str) -> list[RewardScores]:
    """RewardScores from a /v1/score answer; a wrong count or shape raises instead of guessing."""
    try:
        results = body["results"]
        scores = [
            RewardScores(*(score_value(r[k]) for k in ("logicality", "accuracy", "usefulness", "reward")))
            for r in results
        ]
    except (KeyError, TypeError, ValueError) as err:
        raise RewardServerError(f"{url}: malformed /v1/score answer: {type(err).__name__}: {err}", cause="malformed") from err
    if len(scores) != expected:
        raise RewardServerError(f"{url}: /v1/score answered {len(scores)} results for {expected} items", cause="wrong_count")
    return scores


def json_body(response: httpx.Response, where: str) -> Any:
    """The JSON of a 200 answer; anything else there is a server fault, not a result."""
    try:
        return response.json()
    except ValueError as err:
        raise RewardServerError(f"{where}: answer is not JSON: {err}", status=response.status_code) from err


def error_detail(response: httpx.Response) -> tuple[str, str | None]:
    """(detail, field) of an error answer, whatever its body."""
    try:
        body = response.json()
        return str(body.get("detail", body)), body.get("field")
    except (ValueError, AttributeError):
        return response.text[:500] or response.reason_phrase, None


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (delta-seconds form only), else None."""
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
