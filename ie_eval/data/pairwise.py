"""Preference pairs for the pairwise reward model and GCPO: two edits of one instruction and which is better.

A source SPEC names where the comparisons come from, with the vocabulary of `ie-eval eval`:

    synth:DIR          the synthetic benchmark's pairwise view: the two edits of one instruction
                       (DIR/pairs.jsonl, else DIR/manifest.jsonl), ranked by mean MOS (equal: a tie)
    pairwise:PATH      any A/B table the pairwise adapter reads; also genai_bench:, aurora_bench:,
                       editreward_data: (EditReward-Data's training layout)
    kway:PATH          K-way groups (every pair of candidates); also editreward_bench:

Groups keep one source image, so a split by source (`split_of`) never puts the two sides of a
comparison in different splits.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from ie_eval.data.adapters import PREFERENCE_ADAPTERS, load_dataset
from ie_eval.data.adapters.preference import PreferenceGroup, group_preferences, synth_groups
from ie_eval.data.collate import EditCollator, InputBudget
from ie_eval.data.datamodule import module_collator_inputs
from ie_eval.data.readers import read_manifest
from ie_eval.data.records import EditRecord
from ie_eval.data.resumable import ResumableLoader
from ie_eval.data.sampler import StratifiedEditSampler, distributed_replicas
from ie_eval.data.splits import DEFAULT_RATIOS, DEFAULT_SALT, split_of

log = logging.getLogger(__name__)

TIE = 0.5
# EditRecord.meta keys of a GCPO prompt: the comparison it belongs to and its side.
COMPARISON_KEY, ROLE_KEY = "comparison_id", "comparison_role"
ROLES: tuple[str, ...] = ("preferred", "rejected")


@dataclass(frozen=True)
class PreferencePair:
    """Two candidate edits of one comparison: label 1 if `first` is preferred, 0 if `second` is, 0.5 a tie.

    truth_gap: |difference of the mean construction truth| when the records carry it (synthetic
    benchmark: `meta.truth_mos`), else None; what "a close call" means when judging sigma.
    """

    group_id: str
    first: EditRecord
    second: EditRecord
    label: float

    @property
    def preferred(self) -> EditRecord:
        return self.second if self.label == 0.0 else self.first

    @property
    def rejected(self) -> EditRecord:
        return self.first if self.label == 0.0 else self.second

    @property
    def truth_gap(self) -> float | None:
        truths = [r.meta.get("truth_mos") for r in (self.first, self.second)]
        if any(t is None for t in truths):
            return None
        return abs(sum(truths[0]) / len(truths[0]) - sum(truths[1]) / len(truths[1]))


def read_preference_groups(spec: str, strict: bool = True) -> list[PreferenceGroup]:
    """The preference groups a source SPEC names (module docstring)."""
    kind, _, path = spec.partition(":")
    if not path:
        raise ValueError(f"bad preference source {spec!r}; use KIND:PATH with KIND synth or a preference adapter")
    if kind == "synth":
        directory = Path(path)
        manifest = directory
        if directory.is_dir():
            manifest = directory / ("pairs.jsonl" if (directory / "pairs.jsonl").is_file() else "manifest.jsonl")
        seen: dict[str, EditRecord] = {}
        for record in read_manifest(manifest, strict=strict).records:
            seen.setdefault(record.pair_id, record)
        return synth_groups(list(seen.values()))[0]
    if kind not in PREFERENCE_ADAPTERS:
        raise ValueError(f"preference source {spec!r}: {kind!r} is not a preference layout; use synth or one of "
                         f"{PREFERENCE_ADAPTERS}")
    return group_preferences(load_dataset(kind, path, strict=strict).records)


def group_pairs(group: PreferenceGroup, include_ties: bool = False) -> Iterator[PreferencePair]:
    """Every pair of a group's candidates (ties only with `include_ties`)."""
    for i, j, label in group.pairs():
        if label == TIE and not include_ties:
            continue
        yield PreferencePair(group.group_id, group.records[i], group.records[j], label)


def split_pairs(
    groups: Sequence[PreferenceGroup], ratios: dict[str, float], salt: str, include_ties: bool = False
) -> dict[str, list[PreferencePair]]:
    """Pairs per split of the source-disjoint split (a group goes where its first record's source goes)."""
    out: dict[str, list[PreferencePair]] = {name: [] for name in ratios}
    for group in groups:
        out[split_of(group.records[0].source_id, ratios, salt)].extend(group_pairs(group, include_ties))
    return out


class PairCollator:
    """`list[PreferencePair] -> dict`: the 2B edits collated as one score-only batch (all firsts, then all
    seconds), plus `pair_label` (B,) and `truth_gap` (B,) (NaN where unknown)."""

    def __init__(self, collator: EditCollator) -> None:
        self.collator = collator

    def __call__(self, pairs: Sequence[PreferencePair]) -> dict[str, Any]:
        batch = self.collator([p.first for p in pairs] + [p.second for p in pairs])
        batch["pair_label"] = torch.tensor([p.label for p in pairs], dtype=torch.float32)
        gaps = [p.truth_gap for p in pairs]
        batch["truth_gap"] = torch.tensor([math.nan if g is None else g for g in gaps], dtype=torch.float32)
        return batch


class PreferenceDataModule(L.LightningDataModule):
    """What the preference datamodules share: their source SPECs, the split ratios, the pairs of each
    split (`setup`), and held-out loaders over them (`held_out_loader`, which a subclass implements)."""

    include_ties = False

    def use_sources(self, sources: str | list[str], split_ratios: dict[str, float] | None) -> None:
        self.sources = [sources] if isinstance(sources, str) else list(sources)
        self.split_ratios = split_ratios or dict(DEFAULT_RATIOS)
        self.splits: dict[str, list[PreferencePair]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        groups = [g for spec in self.sources for g in read_preference_groups(spec, self.hparams.strict)]
        self.splits = split_pairs(groups, self.split_ratios, self.hparams.split_salt, self.include_ties)
        if not self.splits.get("train") and "train" in self.split_ratios:
            raise ValueError(f"{self.sources}: no train pairs after the split {self.split_ratios}")
        log.info("%s pairs per split: %s", type(self).__name__, {k: len(v) for k, v in self.splits.items()})

    def held_out_loader(self, split: str) -> DataLoader:
        raise NotImplementedError

    def val_dataloader(self) -> DataLoader:
        return self.held_out_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.held_out_loader("test")


class PairwiseDataModule(PreferenceDataModule):
    """Train / val / test loaders of preference pairs over source-disjoint splits of the `sources` SPECs.

    include_ties: keep tied pairs (only the `bt_ties` loss learns from them; the others skip them).
    batch_size / eval_batch_size: pairs per batch (each pair is two edits in the forward pass).
    The collator budget fields are `InputBudget`'s; the model's processor comes from the module.
    """

    def __init__(
        self,
        sources: str | list[str],
        split_ratios: dict[str, float] | None = None,
        split_salt: str = DEFAULT_SALT,
        include_ties: bool = False,
        strict: bool = True,
        batch_size: int = 8,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        max_pixels: int = InputBudget.max_pixels,
        min_pixels: int = InputBudget.min_pixels,
        max_length: int = InputBudget.max_length,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.use_sources(sources, split_ratios)
        self.include_ties = include_ties

    def collator(self) -> PairCollator:
        processor, prompt_suffix = module_collator_inputs(self)
        budget = {k: self.hparams[k] for k in ("max_pixels", "min_pixels", "max_length")}
        return PairCollator(EditCollator(processor, task="preference", mode="score", prompt_suffix=prompt_suffix,
                                         **budget))

    def _loader(self, split: str, train: bool) -> DataLoader:
        pairs = self.splits.get(split, [])
        if not pairs:
            raise ValueError(f"split '{split}' has no preference pairs; sources {self.sources}, ratios {self.split_ratios}")
        num_replicas, _ = distributed_replicas(None, None)
        if train and num_replicas > 1:
            return self._sharded_train_loader(pairs)
        generator = torch.Generator().manual_seed(self.hparams.seed)
        return DataLoader(
            pairs, batch_size=self.hparams.batch_size if train else self.hparams.eval_batch_size, shuffle=train,
            generator=generator if train else None, collate_fn=self.collator(), num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def _sharded_train_loader(self, pairs: list[PreferencePair]) -> DataLoader:
        """Under DDP the trainer injects no sampler (`use_distributed_sampler: false`), so without this every
        rank would train on every pair in the same order: each rank takes its shard of one (seed, epoch)
        shuffle, equal-length, and resumable mid-epoch. One process keeps its generator shuffle."""
        keys = [(str(i), str(i)) for i in range(len(pairs))]  # one group per pair: no caps
        sampler = StratifiedEditSampler(keys, max_pairs_per_source=None, max_critiques_per_pair=None,
                                        shuffle=True, seed=self.hparams.seed)
        loader = ResumableLoader(pairs, batch_size=self.hparams.batch_size, sampler=sampler,
                                 collate_fn=self.collator(), num_workers=self.hparams.num_workers,
                                 persistent_workers=self.hparams.num_workers > 0)
        loader.trainer = self.trainer
        return loader

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def held_out_loader(self, split: str) -> DataLoader:
        return self._loader(split, train=False)


def comparison_sides(tags: Sequence[tuple[str, str] | None]) -> dict[str, dict[str, list[int]]]:
    """{comparison id: {role: positions}} of (comparison id, role) tags (None: not in a comparison)."""
    sides: dict[str, dict[str, list[int]]] = {}
    for index, tag in enumerate(tags):
        if tag is not None:
            comparison, role = tag
            if role not in ROLES:
                raise ValueError(f"comparison '{comparison}': unknown role {role!r}; choose one of {ROLES}")
            sides.setdefault(comparison, {r: [] for r in ROLES})[role].append(index)
    return sides


def comparison_tag(record: EditRecord) -> tuple[str, str] | None:
    """(comparison id, role) of a GCPO prompt, None for any other record."""
    if COMPARISON_KEY not in record.meta:
        return None
    return str(record.meta[COMPARISON_KEY]), str(record.meta[ROLE_KEY])


def comparison_credits(records: Sequence[EditRecord], scores: torch.Tensor) -> torch.Tensor:
    """Per comparison among `records` (one prompt per side): 1 if the preferred edit's score is higher,
    0.5 if equal, 0 if lower or if either score is NaN (a critique that did not parse decides nothing)."""
    credits = []
    for members in comparison_sides([comparison_tag(r) for r in records]).values():
        if members["preferred"] and members["rejected"]:
            preferred, rejected = float(scores[members["preferred"][0]]), float(scores[members["rejected"][0]])
            credits.append(1.0 if preferred > rejected else 0.5 if preferred == rejected else 0.0)
    return torch.tensor(credits, dtype=torch.float32)
