"""Where GRPO's RE-Reward scores come from: a reward server over HTTP, or the model in-process.

Either way the scorer is wrapped in `GuardedScorer`, the one retry layer (the HTTP client makes
a single attempt per call): a failed call is retried until `attempts` or the step's total
`deadline_s` runs out. What the policy wrote is never a crash: critiques longer than the
server takes are cut to `max_critique_chars` before they are sent, and an item the server still
refuses (HTTP 4xx naming `items.<i>`) gets `refused_penalty` as its scores. Every other failure
(server unreachable or overloaded past the deadline, a refusal not about one item, non-finite
scores, a wrong number of results) raises `RewardUnavailableError` naming its cause, which the
GRPO loop turns into an emergency checkpoint and a stop on every rank.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ie_eval.serve.base import RewardItem, RewardScorer, RewardScores, RewardServerError

log = logging.getLogger(__name__)

FAILURE_CAUSES: tuple[str, ...] = ("unreachable", "refused", "non_finite", "wrong_count", "malformed")
_ITEM_FIELD = re.compile(r"^items\.(\d+)(?:\.|$)")


class RewardUnavailableError(RewardServerError):
    """Rewards could not be obtained for this step (`cause` is one of FAILURE_CAUSES); it must not train."""

    def __init__(self, message: str, cause: str, status: int | None = None, field: str | None = None) -> None:
        super().__init__(message, status=status, field=field, cause=cause)


@dataclass
class RewardSourceConfig:
    """url: reward server base URL (`ie-eval serve-rm`), used when set; else ckpt: an RE-Reward export
    scored in-process. attempts / backoff_s / deadline_s: the one retry layer (whole calls, and their
    total time per step); timeout_s: one HTTP request. max_critique_chars: longer completions are cut
    before sending (the server's default limit). refused_penalty: the scores an item refused by the
    server gets (in the reward model's target units). api_key_file: bearer token of the server."""

    url: str | None = None
    ckpt: str | None = None
    attempts: int = 3
    backoff_s: float = 1.0
    deadline_s: float = 300.0
    timeout_s: float = 60.0
    batch_size: int = 32
    max_critique_chars: int = 8000
    refused_penalty: float = -3.0
    api_key_file: str | None = None


class GuardedScorer:
    """A `RewardScorer` that retries its inner scorer within a deadline and never returns bad scores."""

    def __init__(
        self, inner: RewardScorer, attempts: int = 3, backoff_s: float = 1.0, deadline_s: float = 300.0,
        max_critique_chars: int = 8000, refused_penalty: float = -3.0,
    ) -> None:
        if attempts < 1 or deadline_s <= 0 or max_critique_chars < 1:
            raise ValueError(f"attempts >= 1, deadline_s > 0 and max_critique_chars >= 1, got {attempts}, {deadline_s}, "
                             f"{max_critique_chars}")
        self.inner, self.attempts, self.backoff_s = inner, int(attempts), float(backoff_s)
        self.deadline_s, self.max_critique_chars = float(deadline_s), int(max_critique_chars)
        self.refused_penalty = float(refused_penalty)
        self.refused_items = 0  # items scored with the penalty since construction

    def score(self, items: Sequence[RewardItem]) -> list[RewardScores]:
        deadline = time.monotonic() + self.deadline_s
        sendable = [replace(i, critique=i.critique[: self.max_critique_chars]) for i in items]
        results: list[RewardScores | None] = [None] * len(items)
        pending = list(range(len(items)))
        while pending:
            try:
                scores = self.call(deadline, [sendable[i] for i in pending])
            except RewardUnavailableError:
                raise
            except RewardServerError as err:
                index = refused_item(err, len(pending))
                if index is None:
                    raise RewardUnavailableError(f"the reward model refused the request: {err}", "refused",
                                                 err.status, err.field) from err
                refused = pending.pop(index)
                log.warning("reward server refused item %d (%s); scoring it %s", refused, err, self.refused_penalty)
                results[refused] = self.penalty()
                self.refused_items += 1
                continue
            check_scores(scores, len(pending))
            for position, score in zip(pending, scores, strict=True):
                results[position] = score
            pending = []
        return [r for r in results if r is not None]

    def call(self, deadline: float, items: list[RewardItem]) -> list[RewardScores]:
        """The inner scorer, retried on failures other than a refusal, within `attempts` and the deadline."""
        last: RewardServerError | None = None
        for attempt in range(1, self.attempts + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                if hasattr(self.inner, "score_within"):
                    return self.inner.score_within(items, remaining)
                return self.inner.score(items)
            except RewardServerError as err:
                if err.status is not None and 400 <= err.status < 500:
                    raise
                if err.cause is not None:  # an answer came back, and it is wrong: retrying will not fix it
                    raise RewardUnavailableError(str(err), err.cause, err.status, err.field) from err
                last = err
                log.warning("reward scoring failed (attempt %d/%d): %s", attempt, self.attempts, err)
                pause = min(self.backoff_s * 2 ** (attempt - 1), max(0.0, deadline - time.monotonic()))
                if attempt < self.attempts and pause > 0:
                    time.sleep(pause)
        raise RewardUnavailableError(
            f"no rewards within {self.attempts} attempts / deadline_s={self.deadline_s}; last error: {last}",
            "unreachable", getattr(last, "status", None),
        ) from last

    def penalty(self) -> RewardScores:
        value = self.refused_penalty
        return RewardScores(value, value, value, value)


def refused_item(err: RewardServerError, count: int) -> int | None:
    """Index of the one item a 4xx refusal names (`items.<i>...`), else None."""
    if err.status is None or not 400 <= err.status < 500 or err.field is None:
        return None
    match = _ITEM_FIELD.match(err.field)
    index = int(match.group(1)) if match else None
    return index if index is not None and index < count else None


def check_scores(scores: Sequence[RewardScores], expected: int) -> None:
    """One finite set of scores per item, or RewardUnavailableError naming what is wrong."""
    if len(scores) != expected:
        raise RewardUnavailableError(f"the reward model returned {len(scores)} results for {expected} items", "wrong_count")
    for index, score in enumerate(scores):
        values = (score.logicality, score.accuracy, score.usefulness, score.reward)
        if not all(isinstance(v, float) and math.isfinite(v) for v in values):
            raise RewardUnavailableError(f"the reward model returned non-finite scores for item {index}: {values}",
                                         "non_finite")


def build_scorer(config: RewardSourceConfig) -> GuardedScorer:
    """RewardClient for `url` (one attempt per call), else LocalReward for `ckpt`, inside the retry layer."""
    if config.url:
        from pathlib import Path

        from ie_eval.serve.client import RewardClient

        api_key = Path(config.api_key_file).read_text(encoding="utf-8").strip() if config.api_key_file else None
        inner: RewardScorer = RewardClient(
            config.url, batch_size=config.batch_size, timeout_s=config.timeout_s, max_retries=0, api_key=api_key,
        )
    elif config.ckpt:
        from ie_eval.serve.local import LocalReward

        inner = LocalReward.from_pretrained(config.ckpt, batch_size=config.batch_size)
    else:
        raise ValueError("reward_source needs `url` (a running `ie-eval serve-rm`) or `ckpt` (an RE-Reward export)")
    return GuardedScorer(inner, config.attempts, config.backoff_s, config.deadline_s, config.max_critique_chars,
                         config.refused_penalty)
