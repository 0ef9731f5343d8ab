"""`LocalReward`: the reward model in-process, behind the same `score` interface as `RewardClient`.

For single-GPU runs and tests: GRPO code takes a `RewardScorer` and does not care whether
scores come from here or from the HTTP server; both run `RewardScoring.score_records`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from ie_eval.data.collate import CollateError
from ie_eval.models.reward_model import RewardModel
from ie_eval.serve.base import RewardItem, RewardScores, RewardServerError
from ie_eval.serve.scoring import RewardScoring


class LocalReward:
    """In-process `RewardScorer`. Thread-safe: one lock serializes use of the model.

    Bad input raises `RewardServerError` with status 422 and the item's field (`items.<i>`), as
    the server refuses it, so callers handle one exception type whichever scorer they hold.
    """

    def __init__(self, scoring: RewardScoring) -> None:
        self.scoring = scoring
        self._lock = threading.Lock()

    @classmethod
    def from_model(cls, model: RewardModel, batch_size: int = 32, **scoring_kwargs: object) -> LocalReward:
        """Wrap a loaded model; `scoring_kwargs` go to `RewardScoring` (reward_weights, max_pixels, ...)."""
        return cls(RewardScoring(model, batch_size=batch_size, **scoring_kwargs))  # type: ignore[arg-type]

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str = "cpu", batch_size: int = 32, **scoring_kwargs: object
    ) -> LocalReward:
        """Load a `RewardModel.save_pretrained` directory and wrap it."""
        model = RewardModel.from_pretrained(directory, device=device)
        return cls.from_model(model, batch_size=batch_size, **scoring_kwargs)

    def score(self, items: Sequence[RewardItem]) -> list[RewardScores]:
        """One `RewardScores` per item, in order; an empty list scores to an empty list."""
        if not items:
            return []
        try:
            with self._lock:
                return self.scoring.score_items(items)
        except CollateError as err:
            message = str(err)
            field = message.split(":", 1)[0] if message.startswith("items.") else None
            raise RewardServerError(f"LocalReward: {message}", status=422, field=field) from err

    def info(self) -> dict[str, object]:
        return self.scoring.info()
