"""GRPO's composite reward: `RewardSample`s (one per completion) in, a weighted sum of terms out.

- `RewardSample`: a completion, the edit it critiques, what parses from it, its MOS and, for GCPO,
  the comparison it belongs to.
- `RewardTerm`: the interface of a term, `__call__(samples) -> (N,) tensor` (the terms: rl/terms.py).
- `CompositeReward`: sum_k weight_k * reward_k, keeping every component for logging
  (`CompositeRewardValues.metrics`); `rl/terms.py`'s `build_rewards` builds one from a config.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ie_eval.data.critique_format import ParsedCritique, parse_critique
from ie_eval.data.pairwise import comparison_tag
from ie_eval.data.records import EditRecord, single_mos
from ie_eval.serve.base import ImageLike


@dataclass(frozen=True)
class RewardSample:
    """One completion to reward: the edit it critiques, its text, what parses from it, and MOS if known.

    mos: (visual quality, instruction alignment, content preservation) in the records' normalized
    target scale (ECDF-probit by default), or None for a pure source-edit pair.
    mos_overall: the edit's single overall MOS on the same scale when its dataset has one
    (`records.single_mos`: IE-Bench, IE-Critic-R1's `answer`), else None.
    parsed: filled from `completion`, read in `critique_format`, when not given.
    """

    source_image: ImageLike
    edited_image: ImageLike
    instruction: str
    completion: str
    parsed: ParsedCritique | None = None
    mos: tuple[float, float, float] | None = None
    comparison: tuple[str, str] | None = None  # (comparison id, role) of a GCPO prompt
    mos_overall: float | None = None
    critique_format: str = "sections"

    def __post_init__(self) -> None:
        if self.parsed is None:
            object.__setattr__(self, "parsed", parse_critique(self.completion, self.critique_format))

    @classmethod
    def from_record(cls, record: EditRecord, completion: str, critique_format: str = "sections") -> RewardSample:
        return cls(record.source_image, record.edited_image, record.instruction, completion, mos=record.mos,
                   comparison=comparison_tag(record), mos_overall=single_mos(record), critique_format=critique_format)

    @property
    def parsed_scores(self) -> tuple[float, float, float] | None:
        return self.parsed.scores


class RewardTerm:
    """Base of the terms of the composite reward: `__call__` gives (N,) float32 rewards; `applies` says which count.

    A component that does not apply to a sample (MOS reward without MOS) gives it 0 there, and
    its logged mean / std are taken over the samples it applies to only.
    """

    def __call__(self, samples: Sequence[RewardSample]) -> torch.Tensor:
        raise NotImplementedError

    def applies(self, samples: Sequence[RewardSample]) -> torch.Tensor:
        """(N,) bool: which samples this component rewards (all, unless overridden)."""
        return torch.ones(len(samples), dtype=torch.bool)


@dataclass
class TermValues:
    """One component's (N,) rewards, where it applies, and its weight in the total."""

    values: torch.Tensor
    applies: torch.Tensor
    weight: float

    @property
    def mean(self) -> float:
        """Mean over the samples the component applies to (NaN if none)."""
        kept = self.values[self.applies]
        return float(kept.mean()) if kept.numel() else math.nan

    @property
    def std(self) -> float:
        """Population std over the samples the component applies to (NaN if none)."""
        kept = self.values[self.applies]
        return float(kept.std(correction=0)) if kept.numel() else math.nan


@dataclass
class CompositeRewardValues:
    """total: (N,) sum_k weight_k * values_k; components by name; the samples they were computed on."""

    total: torch.Tensor
    components: dict[str, TermValues] = field(default_factory=dict)
    samples: list[RewardSample] = field(default_factory=list)

    def metrics(self, prefix: str = "reward_") -> dict[str, float]:
        """{prefix}mean / {prefix}std of the total and {prefix}{name}_mean / _std per term (population std)."""
        out = {f"{prefix}mean": float(self.total.mean()), f"{prefix}std": float(self.total.std(correction=0))}
        for name, component in self.components.items():
            out[f"{prefix}{name}_mean"], out[f"{prefix}{name}_std"] = component.mean, component.std
        return out


class CompositeReward:
    """Weighted sum of named components: `__call__(samples) -> CompositeRewardValues`."""

    def __init__(self, components: Sequence[tuple[str, float, RewardTerm]]) -> None:
        if not components:
            raise ValueError("CompositeReward needs at least one component")
        names = [name for name, _, _ in components]
        if len(set(names)) != len(names):
            raise ValueError(f"reward component names must be unique, got {names}")
        self.components = [(name, float(weight), reward) for name, weight, reward in components]

    def refused_items(self) -> int:
        """Completions the reward scorer refused and the terms penalized, since construction."""
        return sum(getattr(term, "refused_items", 0) for _, _, term in self.components)

    def prefetch(self, samples: Sequence[RewardSample]) -> None:
        """Let the terms that call a model (RE-Reward) score these samples ahead of `__call__` on the batch
        that holds them; the totals stay those of one call on the whole batch."""
        for _, _, reward in self.components:
            if hasattr(reward, "prefetch"):
                reward.prefetch(samples)

    def __call__(self, samples: Sequence[RewardSample]) -> CompositeRewardValues:
        total = torch.zeros(len(samples), dtype=torch.float32)
        parts: dict[str, TermValues] = {}
        for name, weight, reward in self.components:
            values = reward(samples).float()
            applies = reward.applies(samples)
            if values.shape != (len(samples),):
                raise RuntimeError(f"reward '{name}' returned shape {tuple(values.shape)} for {len(samples)} samples")
            total += weight * torch.where(applies, values, torch.zeros_like(values))
            parts[name] = TermValues(values=values, applies=applies, weight=weight)
        return CompositeRewardValues(total=total, components=parts, samples=list(samples))
