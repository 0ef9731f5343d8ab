"""Adapters from public dataset layouts to EditRecords, and a registry to pick one by name.

Every adapter takes ``(path, *, columns=None, ..., **options)`` (`tables.TableOptions`:
image_root, strict, check_images, sheet) and returns a `ManifestReadResult`, with the same bad-row policy
as `read_manifest`. Expected layouts and column mappings: docs/data.md.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from ie_eval.data.adapters.ebench import load_ebench
from ie_eval.data.adapters.ie_critic_r1 import load_ie_critic_r1
from ie_eval.data.adapters.iebench import load_iebench
from ie_eval.data.adapters.kway import load_kway
from ie_eval.data.adapters.pairwise import EDITREWARD_DATA_COLUMNS, load_pairwise
from ie_eval.data.adapters.preference import PreferenceGroup, group_preferences
from ie_eval.data.adapters.reasonedit import load_reasonedit_cot, load_reasonedit_reward
from ie_eval.data.readers import ManifestReadResult, read_manifest

ADAPTERS: dict[str, Callable[..., ManifestReadResult]] = {
    "manifest": read_manifest,
    "ebench": load_ebench,
    "reasonedit_cot": load_reasonedit_cot,
    "reasonedit_reward": load_reasonedit_reward,
    "iebench": load_iebench,
    "ie_critic_r1": load_ie_critic_r1,
    "genai_bench": partial(load_pairwise, dataset="genai_bench"),
    "aurora_bench": partial(load_pairwise, dataset="aurora_bench"),
    "pairwise": load_pairwise,
    "editreward_data": partial(load_pairwise, dataset="editreward_data", columns=EDITREWARD_DATA_COLUMNS,
                               default_label="A"),
    "editreward_bench": partial(load_kway, dataset="editreward_bench"),
    "kway": load_kway,
}


# The adapters whose records carry preference meta (groups of compared candidates).
PREFERENCE_ADAPTERS: tuple[str, ...] = (
    "pairwise", "genai_bench", "aurora_bench", "editreward_data", "kway", "editreward_bench",
)


def load_dataset(name: str, path: str | Path, **kwargs) -> ManifestReadResult:
    """Read `path` with the adapter registered as `name` (keyword arguments go to the adapter)."""
    if name not in ADAPTERS:
        raise ValueError(f"unknown dataset adapter '{name}'; choose one of {sorted(ADAPTERS)}")
    return ADAPTERS[name](path, **kwargs)


__all__ = ["ADAPTERS", "PREFERENCE_ADAPTERS", "PreferenceGroup", "group_preferences", "load_dataset"]
