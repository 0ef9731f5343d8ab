"""Pairwise accuracy with ties, and EditReward-Bench-style K-way group accuracy.

A comparison group is (predicted scores, human ranks) over its K candidates: scores are
higher-is-better, ranks are 1 = best with equal ranks for ties (`PreferenceGroup.ranks`).
Every unordered pair (i, j) of a group is judged from d = pred_i - pred_j and the truth
p = 1 (i preferred), 0 (j preferred) or 0.5 (tie), under a `TiePolicy` with tolerance t >= 0:

    truth tie,    truth_ties="skip":       pair left out
    truth tie,    truth_ties="tolerance":  credit 1 if |d| <= t else 0   (the model must say "tie")
    truth strict, |d| <= t:                credit 0.5 (pred_ties="half") or 0 (pred_ties="wrong")
    truth strict, |d| > t:                 credit 1 if sign(d) agrees with the truth else 0

    pairwise accuracy = sum(credit) / #(judged pairs)
    group accuracy    = #(groups whose every judged pair has credit 1) / #(groups with a judged pair)

reported per K and pooled over all groups ("overall"). `tolerance="calibrate"` picks the t
maximizing pairwise accuracy over the candidates {0} U {|d|} (tie calibration, Deutsch et al.
2023, as EditReward / VideoAlign report "accuracy with ties"); the chosen t is returned.

`BENCH_TIE_POLICIES` gives each supported benchmark's definition (docs/evaluation.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

TRUTH_TIES: tuple[str, ...] = ("skip", "tolerance")
PRED_TIES: tuple[str, ...] = ("half", "wrong")
CALIBRATE = "calibrate"

# (predicted scores, human ranks) of one group's candidates.
Group = tuple[Sequence[float], Sequence[int]]


@dataclass(frozen=True)
class TiePolicy:
    """How ties in the truth and in the prediction are scored (see the module docstring)."""

    truth_ties: str = "skip"
    pred_ties: str = "half"
    tolerance: float | str = 0.0

    def __post_init__(self) -> None:
        if self.truth_ties not in TRUTH_TIES:
            raise ValueError(f"truth_ties must be one of {TRUTH_TIES}, got {self.truth_ties!r}")
        if self.pred_ties not in PRED_TIES:
            raise ValueError(f"pred_ties must be one of {PRED_TIES}, got {self.pred_ties!r}")
        if self.tolerance != CALIBRATE and not (isinstance(self.tolerance, (int, float)) and self.tolerance >= 0):
            raise ValueError(f"tolerance must be a number >= 0 or {CALIBRATE!r}, got {self.tolerance!r}")

    def as_dict(self) -> dict:
        return asdict(self)


# Ties included, 3-way (A / B / tie) with a calibrated tie band: how EditReward reports GenAI-Bench,
# AURORA-Bench and EditReward-Bench (their random baselines, 25.9 / 33.4 / 25.8 % at K=2, are 3-way).
THREE_WAY = TiePolicy(truth_ties="tolerance", pred_ties="wrong", tolerance=CALIBRATE)
# Ties left out, an exactly tied prediction earns half: plain 2-way accuracy.
TWO_WAY = TiePolicy(truth_ties="skip", pred_ties="half", tolerance=0.0)
BENCH_TIE_POLICIES: dict[str, TiePolicy] = {
    "genai_bench": THREE_WAY,
    "aurora_bench": THREE_WAY,
    "editreward_bench": THREE_WAY,
    "kway": THREE_WAY,
    "pairwise": TWO_WAY,
    "synth": TWO_WAY,
}


def truth_preference(rank_i: int, rank_j: int) -> float:
    """p = 1 if i ranks better (lower), 0 if j does, 0.5 for equal ranks."""
    return 1.0 if rank_i < rank_j else 0.0 if rank_i > rank_j else 0.5


def pair_credit(delta: float, truth: float, policy: TiePolicy, tolerance: float) -> float | None:
    """Credit of one pair with d = pred_i - pred_j and truth p; None when the policy skips it."""
    close = abs(delta) <= tolerance
    if truth == 0.5:
        if policy.truth_ties == "skip":
            return None
        return 1.0 if close else 0.0
    if close:
        return 0.5 if policy.pred_ties == "half" else 0.0
    return 1.0 if (delta > 0) == (truth == 1.0) else 0.0


def group_pairs(groups: Sequence[Group]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of every group: (deltas (P,), truths (P,), group index (P,))."""
    deltas, truths, owners = [], [], []
    for index, (scores, ranks) in enumerate(groups):
        if len(scores) != len(ranks):
            raise ValueError(f"group {index}: {len(scores)} scores for {len(ranks)} ranks")
        for i in range(len(scores)):
            for j in range(i + 1, len(scores)):
                deltas.append(float(scores[i]) - float(scores[j]))
                truths.append(truth_preference(int(ranks[i]), int(ranks[j])))
                owners.append(index)
    return np.asarray(deltas, float), np.asarray(truths, float), np.asarray(owners, int)


def calibrate_tolerance(deltas: np.ndarray, truths: np.ndarray, policy: TiePolicy) -> float:
    """The smallest t in {0} U {|d|} maximizing pairwise accuracy under `policy` (O(P log P))."""
    size = np.abs(deltas)
    candidates = np.unique(np.concatenate([[0.0], size]))
    tie = truths == 0.5
    strict = ~tie
    right = strict & (((deltas > 0) & (truths == 1.0)) | ((deltas < 0) & (truths == 0.0)))
    tie_sizes = np.sort(size[tie])
    strict_sizes = np.sort(size[strict])
    right_sizes = np.sort(size[right])
    # For each t: ties within t score 1 (if judged); strict pairs within t score 0.5 or 0;
    # strict pairs beyond t score 1 when the sign is right.
    ties_close = np.searchsorted(tie_sizes, candidates, side="right")
    strict_close = np.searchsorted(strict_sizes, candidates, side="right")
    right_far = len(right_sizes) - np.searchsorted(right_sizes, candidates, side="right")
    credit = right_far + (0.5 * strict_close if policy.pred_ties == "half" else 0.0)
    judged = int(strict.sum())
    if policy.truth_ties == "tolerance":
        credit = credit + ties_close
        judged += int(tie.sum())
    if judged == 0:
        return 0.0
    return float(candidates[int(np.argmax(credit))])  # argmax: first (smallest) best t


def preference_accuracy(groups: Sequence[Group], policy: TiePolicy) -> dict:
    """Pairwise accuracy and K-way group accuracy (per K and overall) of `groups` under `policy`.

    Returns {"pairwise_accuracy", "n_pairs", "tolerance", "group_accuracy": {"K=2": {...}, ...,
    "overall": {"accuracy", "n_groups"}}}; accuracies are None where nothing was judged.
    """
    deltas, truths, owners = group_pairs(groups)
    if policy.tolerance == CALIBRATE:
        tolerance = calibrate_tolerance(deltas, truths, policy)
    else:
        tolerance = float(policy.tolerance)
    credits = [pair_credit(d, t, policy, tolerance) for d, t in zip(deltas, truths, strict=True)]
    judged = [c for c in credits if c is not None]
    per_group: dict[int, list[float]] = {}
    for owner, credit in zip(owners, credits, strict=True):
        if credit is not None:
            per_group.setdefault(int(owner), []).append(credit)
    by_k: dict[str, list[bool]] = {}
    for index, group_credits in per_group.items():
        by_k.setdefault(f"K={len(groups[index][0])}", []).append(all(c == 1.0 for c in group_credits))
    group_accuracy = {k: _rate(by_k[k]) for k in sorted(by_k, key=lambda name: int(name[2:]))}
    group_accuracy["overall"] = _rate([ok for oks in by_k.values() for ok in oks])
    return {
        "pairwise_accuracy": float(np.mean(judged)) if judged else None,
        "n_pairs": len(judged),
        "tolerance": tolerance,
        "group_accuracy": group_accuracy,
    }


def _rate(flags: Sequence[bool]) -> dict:
    return {"accuracy": float(np.mean(flags)) if flags else None, "n_groups": len(flags)}
