"""The interface every evaluator implements: `Scorer.score(records) -> ScoreOutput`, with the run-time
options they share. The registry that builds a scorer from a SPEC string is `ie_eval/eval/scorers.py`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ie_eval.data.records import EditRecord


@dataclass
class ScoreOutput:
    """Predictions for a list of records.

    scores: per record, one value per scorer dim, or None when the record could not be scored.
    texts: generated text per record (generative scorers), else None.
    """

    scores: list[list[float] | None]
    texts: list[str] | None = None
    info: dict = field(default_factory=dict)


@dataclass
class ScorerOptions:
    """Run-time knobs shared by the scorers (CLI flags)."""

    device: str = "cpu"
    batch_size: int = 8
    max_new_tokens: int = 512
    max_pixels: int | None = None
    max_length: int | None = None


class Scorer:
    """Base: `dims` it predicts, `score(records)`, whether it needs records with critiques."""

    dims: tuple[str, ...] = ()
    needs_critique: bool = False
    generative: bool = False

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def score(self, records: Sequence[EditRecord]) -> ScoreOutput:
        raise NotImplementedError

    def info(self) -> dict:
        return {"spec": self.spec, "dims": list(self.dims), "generative": self.generative}
