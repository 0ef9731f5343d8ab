"""Where GRPO's RE-Reward scores come from: a reward server over HTTP, or the model in-process.

Either way the scorer is wrapped in `RetryingScorer`: a failed scoring call is retried as a
whole (after the HTTP client's own per-request retries), and when the attempts are spent it
raises `RewardUnavailableError`, which the GRPO loop turns into a checkpoint and a stop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ie_eval.serve.base import RewardItem, RewardScorer, RewardScores, RewardServerError

log = logging.getLogger(__name__)


class RewardUnavailableError(RewardServerError):
    """Rewards could not be obtained after every retry; the step must not train."""


@dataclass
class RewardSourceConfig:
    """url: reward server base URL (`ie-eval serve-rm`), used when set; else ckpt: an RE-Reward export
    scored in-process. attempts / backoff_s: whole-call retries of the loop; request_retries and
    timeout_s: the HTTP client's own per-request policy. batch_size: items per request."""

    url: str | None = None
    ckpt: str | None = None
    attempts: int = 3
    backoff_s: float = 1.0
    request_retries: int = 2
    timeout_s: float = 60.0
    batch_size: int = 32


class RetryingScorer:
    """A `RewardScorer` that retries its inner scorer `attempts` times, then raises RewardUnavailableError.

    Refusals of the input itself (HTTP 4xx) are not retried: they would fail the same way again.
    """

    def __init__(self, inner: RewardScorer, attempts: int = 3, backoff_s: float = 1.0) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        self.inner, self.attempts, self.backoff_s = inner, int(attempts), float(backoff_s)

    def score(self, items: Sequence[RewardItem]) -> list[RewardScores]:
        last: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                return self.inner.score(items)
            except RewardServerError as err:
                if err.status is not None and 400 <= err.status < 500:
                    raise
                last = err
                log.warning("reward scoring failed (attempt %d/%d): %s", attempt, self.attempts, err)
                if attempt < self.attempts:
                    time.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise RewardUnavailableError(f"{self.attempts} scoring attempts failed; last error: {last}") from last


def build_scorer(config: RewardSourceConfig) -> RetryingScorer:
    """RewardClient for `url`, else LocalReward for `ckpt`, wrapped with the loop's retries."""
    if config.url:
        from ie_eval.serve.client import RewardClient

        inner: RewardScorer = RewardClient(
            config.url, batch_size=config.batch_size, timeout_s=config.timeout_s, max_retries=config.request_retries,
        )
    elif config.ckpt:
        from ie_eval.serve.local import LocalReward

        inner = LocalReward.from_pretrained(config.ckpt, batch_size=config.batch_size)
    else:
        raise ValueError("reward_source needs `url` (a running `ie-eval serve-rm`) or `ckpt` (an RE-Reward export)")
    return RetryingScorer(inner, config.attempts, config.backoff_s)
