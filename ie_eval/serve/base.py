"""The reward-scoring interface GRPO talks to, whether the model is in-process or behind HTTP.

`RewardScoring` (ie_eval/serve/scoring.py, in-process) and `RewardClient` (ie_eval/serve/client.py) both
implement `RewardScorer`: `score(items) -> list[RewardScores]`, one result per item, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from PIL import Image

# An image as a caller holds it: a decoded PIL image, or a file path (read by whoever scores it).
ImageLike = Image.Image | str | Path


@dataclass(frozen=True)
class RewardItem:
    """One critique to score: the edit (source, edited, instruction) and the candidate critique."""

    source_image: ImageLike
    edited_image: ImageLike
    instruction: str
    critique: str


@dataclass(frozen=True)
class RewardScores:
    """RE-Reward's three critique scores and their weighted scalar reward (paper eq. 12)."""

    logicality: float
    accuracy: float
    usefulness: float
    reward: float

    def as_dict(self) -> dict[str, float]:
        return {
            "logicality": self.logicality,
            "accuracy": self.accuracy,
            "usefulness": self.usefulness,
            "reward": self.reward,
        }


class RewardServerError(RuntimeError):
    """Scoring failed as a whole (refused input, server gone, retries spent): no partial results.

    `status` is the last HTTP status seen (None for connection errors or local failures),
    `field` the request field the server named, when it named one, and `cause` what was wrong
    with an answer that came back ("wrong_count", "malformed"), None for failures to get one.
    """

    def __init__(self, message: str, status: int | None = None, field: str | None = None, cause: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.cause = cause


@runtime_checkable
class RewardScorer(Protocol):
    """Anything that scores critiques: returns exactly one `RewardScores` per item, in item order."""

    def score(self, items: Sequence[RewardItem]) -> list[RewardScores]:
        """Score every item or raise `RewardServerError`; never a partial list."""
        ...
