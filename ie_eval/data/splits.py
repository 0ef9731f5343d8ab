"""Source-disjoint, hash-based train/val/test splits.

A record's split is a pure function of its `source_id` (and a salt): every pair and
critique of one source image lands in the same split, so no source image leaks from train
into evaluation, and the assignment is the same on every run, machine and Python version
(sha256, not the per-process salted `hash()`). Adding or removing sources never moves the
others.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping

from ie_eval.data.records import EditRecord

DEFAULT_RATIOS: Mapping[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}
DEFAULT_SALT = "ie-eval"
RATIO_TOLERANCE = 1e-6


def validate_ratios(ratios: Mapping[str, float]) -> None:
    """Raise ValueError unless `ratios` names at least one split, each positive, summing to 1."""
    if not ratios:
        raise ValueError("split ratios are empty; give e.g. {'train': 0.8, 'val': 0.1, 'test': 0.1}")
    for name, ratio in ratios.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"split names must be non-empty strings, got {name!r}")
        if not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or ratio <= 0:
            raise ValueError(f"split ratio for '{name}' must be a positive number, got {ratio!r}")
    total = math.fsum(ratios.values())
    if abs(total - 1.0) > RATIO_TOLERANCE:
        raise ValueError(f"split ratios must sum to 1, got {total:.6g} from {dict(ratios)}")


def unit_hash(key: str, salt: str = DEFAULT_SALT) -> float:
    """A stable uniform number in [0, 1) from sha256(salt + key): the first 8 bytes over 2**64."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(
    source_id: str, ratios: Mapping[str, float] = DEFAULT_RATIOS, salt: str = DEFAULT_SALT
) -> str:
    """The split a source image belongs to.

    Splits are laid on [0, 1) in sorted-name order (so the order a config lists them in
    does not matter) and `unit_hash(source_id)` picks one.
    """
    validate_ratios(ratios)
    return _pick(unit_hash(str(source_id), salt), ratios)


def _pick(position: float, ratios: Mapping[str, float]) -> str:
    names = sorted(ratios)
    upper = 0.0
    for name in names:
        upper += ratios[name]
        if position < upper:
            return name
    return names[-1]  # float rounding can leave the sum a hair under 1


def split_records(
    records: Iterable[EditRecord], ratios: Mapping[str, float] = DEFAULT_RATIOS, salt: str = DEFAULT_SALT
) -> dict[str, list[EditRecord]]:
    """Records grouped by `split_of(record.source_id)`; every split is a key, order kept within each."""
    validate_ratios(ratios)
    out: dict[str, list[EditRecord]] = {name: [] for name in ratios}
    cache: dict[str, str] = {}
    for record in records:
        if record.source_id not in cache:
            cache[record.source_id] = _pick(unit_hash(record.source_id, salt), ratios)
        out[cache[record.source_id]].append(record)
    return out


def check_source_disjoint(splits: Mapping[str, Iterable[EditRecord]]) -> None:
    """Raise ValueError naming a source_id that appears in more than one split."""
    owner: dict[str, str] = {}
    for name, records in splits.items():
        for record in records:
            first = owner.setdefault(record.source_id, name)
            if first != name:
                raise ValueError(f"source '{record.source_id}' is in both '{first}' and '{name}' splits")
