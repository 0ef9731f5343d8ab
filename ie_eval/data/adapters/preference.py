"""Preference data (pairwise A/B with ties, K-way rankings) on top of plain EditRecords.

Each candidate edit is one EditRecord, so images, splits and readers need nothing new;
the comparison lives in its meta:

    meta = {"group_id": str, "rank": int, "group_size": int, "candidate": str, ...}

`rank` is 1 for the best candidate; equal ranks are ties (a pairwise tie is ranks 1, 1;
competition ranking otherwise: 1, 1, 3). `group_preferences` turns such records back into
`PreferenceGroup`s for the pairwise / K-way accuracy metrics.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from ie_eval.data.records import MOS_DIMS, EditRecord, RecordError

PREFERENCE_META_KEYS: tuple[str, ...] = ("group_id", "rank", "group_size", "candidate")
# Mean MOS is rounded before ranking so float noise does not break a designed tie.
TIE_DIGITS = 6


@dataclass(frozen=True)
class PreferenceGroup:
    """Candidate edits of one (source, instruction) compared by humans.

    Attributes:
        group_id: the comparison's id.
        records: the candidates, in dataset order.
        ranks: human rank per candidate, 1 = best, equal = tie.
    """

    group_id: str
    records: tuple[EditRecord, ...]
    ranks: tuple[int, ...]

    @property
    def k(self) -> int:
        return len(self.records)

    def pairs(self) -> list[tuple[int, int, float]]:
        """(i, j, p) for every i < j: p = 1 if i is preferred, 0 if j is, 0.5 for a tie."""
        out = []
        for i in range(self.k):
            for j in range(i + 1, self.k):
                difference = self.ranks[j] - self.ranks[i]
                out.append((i, j, 1.0 if difference > 0 else 0.0 if difference < 0 else 0.5))
        return out


def competition_ranks(scores: Sequence[float], higher_is_better: bool = True) -> list[int]:
    """1-based ranks with ties sharing the best rank: scores [3, 5, 5] -> [3, 1, 1]."""
    sign = -1.0 if higher_is_better else 1.0
    return [1 + sum(1 for other in scores if sign * other < sign * score) for score in scores]


def preference_meta(group_id: str, rank: int, group_size: int, candidate: str, **extra: object) -> dict:
    """The meta block of one candidate record (see the module docstring)."""
    return {"group_id": str(group_id), "rank": int(rank), "group_size": int(group_size),
            "candidate": str(candidate), **extra}


def group_preferences(records: Iterable[EditRecord]) -> list[PreferenceGroup]:
    """Records carrying preference meta, regrouped in first-seen order; checks group sizes."""
    members: dict[str, list[EditRecord]] = {}
    for record in records:
        missing = [key for key in PREFERENCE_META_KEYS if key not in record.meta]
        if missing:
            raise RecordError(f"record '{record.sample_id}': not a preference record, meta lacks {missing}")
        members.setdefault(str(record.meta["group_id"]), []).append(record)
    groups = []
    for group_id, candidates in members.items():
        expected = int(candidates[0].meta["group_size"])
        if len(candidates) != expected:
            raise RecordError(f"preference group '{group_id}': {len(candidates)} candidates, meta says {expected}")
        ranks = tuple(int(c.meta["rank"]) for c in candidates)
        groups.append(PreferenceGroup(group_id, tuple(candidates), ranks))
    return groups


def synth_groups(pairs: Sequence[EditRecord]) -> tuple[list[PreferenceGroup], dict[str, dict[str, tuple[int, ...]]]]:
    """Twin-pair groups of the synthetic benchmark (same instruction, different edits), ranked by MOS.

    Only complete groups (>= 2 pairs with MOS) are kept. Overall ranks come from the mean of the
    three MOS dims, per-dim ranks from each dim; equal values (to TIE_DIGITS) tie.
    """
    members: dict[str, list[EditRecord]] = {}
    for record in pairs:
        group_id = record.meta.get("group_id")
        if group_id is not None and record.mos is not None:
            members.setdefault(str(group_id), []).append(record)
    groups, dim_ranks = [], {}
    for group_id, candidates in members.items():
        if len(candidates) < 2:
            continue
        overall = [round(sum(r.mos) / len(r.mos), TIE_DIGITS) for r in candidates]  # type: ignore[arg-type]
        ranks = tuple(competition_ranks(overall))
        candidates = [replace(r, meta={**r.meta, "group_id": group_id}) for r in candidates]
        groups.append(PreferenceGroup(group_id, tuple(candidates), ranks))
        dim_ranks[group_id] = {
            dim: tuple(competition_ranks([round(r.mos[i], TIE_DIGITS) for r in candidates]))  # type: ignore[index]
            for i, dim in enumerate(MOS_DIMS)
        }
    return groups, dim_ranks
