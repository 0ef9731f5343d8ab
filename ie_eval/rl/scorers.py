"""Where GRPO's RE-Reward scores come from: a reward server over HTTP, or the model in-process.

`build_scorer` gives a `RewardClient` (one attempt per call) or a `RewardScoring`; `ReRewardTerm`
(rl/terms.py) is the one retry layer around it, as its `ScoringGuard` says.
What the policy wrote is never a crash: critiques longer than the server takes are cut to
`max_critique_chars` before they are sent, and an item the server still refuses (HTTP 4xx naming
`items.<i>`) gets `refused_penalty` as its scores. Every other failure (server unreachable or
overloaded past the deadline, a refusal not about one item, non-finite scores, a wrong number of
results) raises `RewardUnavailableError` naming its cause, which the GRPO loop turns into an
emergency checkpoint and a stop on every rank.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ie_eval.serve.base import RewardScorer, RewardScores, RewardServerError

log = logging.getLogger(__name__)

FAILURE_CAUSES: tuple[str, ...] = ("unreachable", "refused", "non_finite", "wrong_count", "malformed")
_ITEM_FIELD = re.compile(r"^items\.(\d+)(?:\.|$)")


class RewardUnavailableError(RewardServerError):
    """Rewards could not be obtained for this step (`cause` is one of FAILURE_CAUSES); it must not train."""

    def __init__(self, message: str, cause: str, status: int | None = None, field: str | None = None) -> None:
        super().__init__(message, status=status, field=field, cause=cause)


@dataclass
class ScoringGuard:
    """GRPO's one retry layer around the scorer (`ReRewardTerm` applies it).

    attempts / backoff_s / deadline_s: a failed scorer call is retried, with exponential backoff,
    until `attempts` whole calls or the step's total `deadline_s` runs out. max_critique_chars:
    longer completions are cut before sending (the server's default limit). refused_penalty: the
    scores an item refused by the server gets (in the reward model's target units).
    """

    attempts: int = 3
    backoff_s: float = 1.0
    deadline_s: float = 300.0
    max_critique_chars: int = 8000
    refused_penalty: float = -3.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.deadline_s <= 0 or self.max_critique_chars < 1:
            raise ValueError(f"attempts >= 1, deadline_s > 0 and max_critique_chars >= 1, got {self.attempts}, "
                             f"{self.deadline_s}, {self.max_critique_chars}")


@dataclass
class RewardSourceConfig(ScoringGuard):
    """url: reward server base URL (`ie-eval serve-rm`), used when set; else ckpt: an RE-Reward export
    scored in-process. timeout_s: one HTTP request; batch_size: critiques per request / forward pass;
    api_key_file: bearer token of the server. The retry options: see ScoringGuard."""

    url: str | None = None
    ckpt: str | None = None
    timeout_s: float = 60.0
    batch_size: int = 32
    api_key_file: str | None = None


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


def build_scorer(config: RewardSourceConfig) -> RewardScorer:
    """RewardClient for `url` (one attempt per call), else RewardScoring of the `ckpt` export in-process."""
    if config.url:
        from pathlib import Path

        from ie_eval.serve.client import RewardClient

        api_key = Path(config.api_key_file).read_text(encoding="utf-8").strip() if config.api_key_file else None
        return RewardClient(
            config.url, batch_size=config.batch_size, timeout_s=config.timeout_s, max_retries=0, api_key=api_key,
        )
    elif config.ckpt:
        from ie_eval.serve.scoring import RewardScoring

        return RewardScoring.from_pretrained(config.ckpt, batch_size=config.batch_size)
    else:
        raise ValueError("reward_source needs `url` (a running `ie-eval serve-rm`) or `ckpt` (an RE-Reward export)")
