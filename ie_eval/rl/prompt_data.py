"""GRPO prompts: (source, edited, instruction) triplets, mixed from a MOS pool and a pure-pair pool.

Paper section 5.3: prompts with MOS (their critiques can also earn verifiable score rewards and
supervise the regression head) and pure source-edit pairs are sampled at a fixed ratio (7:3).
Batches are lists of `EditRecord`s: the GRPO module collates prompts itself and hands the
records (images, instruction, MOS) to the rewards. Under DDP every loader shards by itself (each
rank draws `prompts_per_step` prompts of its own per step), so the trainer runs with
`use_distributed_sampler: false`, as for RE-Reward's stratified sampler.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import replace

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from ie_eval.data.adapters import load_dataset
from ie_eval.data.datamodule import RecordDataset
from ie_eval.data.readers import ManifestReadResult, read_manifests
from ie_eval.data.records import EditRecord, overall_mos, without_mos
from ie_eval.data.resumable import ResumableLoader
from ie_eval.data.sampler import distributed_replicas
from ie_eval.data.splits import split_records, unit_hash

log = logging.getLogger(__name__)


def unique_pairs(records: Sequence[EditRecord]) -> list[EditRecord]:
    """One prompt per (source, edited) pair, critique fields dropped (a manifest has a row per critique)."""
    seen: dict[str, EditRecord] = {}
    for record in records:
        if record.pair_id not in seen:
            seen[record.pair_id] = replace(record, critique=None, critique_id=None, critique_scores=None)
    return list(seen.values())


def has_truth(record: EditRecord) -> bool:
    """A labeled prompt: the three MOS or a single overall one (what the MOS reward terms read)."""
    return overall_mos(record) is not None


def withhold_mos(records: Sequence[EditRecord], share: float, salt: str) -> list[EditRecord]:
    """Turn a stable, hash-chosen `share` of the pairs into pure source-edit pairs (MOS removed).

    Used when no separate pure-pair manifest is given, so the 7:3 mix can still be exercised.
    """
    return [without_mos(r) if unit_hash(r.pair_id, salt) < share else r for r in records]


def mix_counts(prompts_per_step: int, mos_ratio: float, has_labeled: bool, has_pure: bool) -> tuple[int, int]:
    """(labeled, pure) prompts per step for a MOS:pure ratio, falling back to one pool when the other is empty."""
    if not has_pure:
        return prompts_per_step, 0
    if not has_labeled:
        return 0, prompts_per_step
    labeled = min(prompts_per_step, max(0, round(prompts_per_step * mos_ratio)))
    return labeled, prompts_per_step - labeled


class PromptMixSampler(Sampler[list[int]]):
    """Batch sampler: each batch holds `labeled` MOS prompts and `pure` prompts, each pool reshuffled per epoch.

    An epoch lasts until the larger per-step share of either pool has seen every one of its prompts once
    (the smaller pool wraps around), so both pools are covered every epoch. With `num_replicas` > 1
    (default: from torch.distributed) the ranks take turns on one seeded stream of batches, so a step's
    prompts differ between ranks and an epoch is shared among them.
    """

    def __init__(
        self, labeled: Sequence[int], pure: Sequence[int], prompts_per_step: int, mos_ratio: float, seed: int = 0,
        num_replicas: int | None = None, rank: int | None = None,
    ) -> None:
        if prompts_per_step < 1:
            raise ValueError(f"prompts_per_step must be >= 1, got {prompts_per_step}")
        if not 0.0 <= mos_ratio <= 1.0:
            raise ValueError(f"mos_ratio must be in [0, 1], got {mos_ratio}")
        if not labeled and not pure:
            raise ValueError("PromptMixSampler: both prompt pools are empty")
        self.labeled, self.pure = list(labeled), list(pure)
        self.counts = mix_counts(prompts_per_step, mos_ratio, bool(self.labeled), bool(self.pure))
        self.num_replicas, self.rank = distributed_replicas(num_replicas, rank)
        self.seed, self.epoch, self._skip = seed, 0, 0

    def __len__(self) -> int:
        shares = (n * self.num_replicas for n in self.counts)
        return max(math.ceil(len(pool) / share) for pool, share in zip((self.labeled, self.pure), shares, strict=True) if share > 0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip_next(self, batches: int) -> None:
        """The next `__iter__` starts after this rank's first `batches` batches (a mid-epoch resume)."""
        self._skip = int(batches)

    def _stream(self, pool: list[int], generator: torch.Generator) -> Iterator[int]:
        while True:
            for i in torch.randperm(len(pool), generator=generator).tolist():
                yield pool[i]

    def __iter__(self) -> Iterator[list[int]]:
        skip, self._skip = self._skip, 0
        generator = torch.Generator().manual_seed(self.seed + 1000 * self.epoch)
        streams = [self._stream(pool, generator) if pool else iter(()) for pool in (self.labeled, self.pure)]
        for step in range(len(self)):
            for turn in range(self.num_replicas):  # skipped batches are still drawn: the streams stay in step
                batch = [next(stream) for stream, n in zip(streams, self.counts, strict=True) for _ in range(n)]
                if turn == self.rank and step >= skip:
                    yield batch
        self.epoch += 1


class RecordBatch:
    """A batch of `EditRecord`s, opaque to Lightning.

    Precision plugins (`bf16-true`, `16-true`, DeepSpeed's) walk a batch to cast its tensors and rebuild
    every list and dataclass in it, which fails on frozen records; an object that is neither passes as is.
    The RL modules take `list(batch)`.
    """

    __slots__ = ("records",)

    def __init__(self, records: Sequence[EditRecord]) -> None:
        self.records = list(records)

    def __iter__(self) -> Iterator[EditRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):  # an int gives a record, a slice a list
        return self.records[index]

    def __repr__(self) -> str:
        return f"RecordBatch({len(self.records)} records)"


def check_self_sharding(trainer: L.Trainer | None, what: str, configs: str) -> None:
    """RL prompt loaders shard themselves: refuse a multi-rank trainer that would inject its own sampler."""
    if trainer is not None and trainer.world_size > 1 and trainer._accelerator_connector.use_distributed_sampler:
        raise ValueError(f"{what} shard themselves across ranks: run the trainer with "
                         f"`use_distributed_sampler: false` ({configs} set it)")


def held_out_loader(items: Sequence, batch_size: int, collate_fn) -> DataLoader:
    """Held-out prompts in their order, split across ranks without shuffling (each is judged once)."""
    num_replicas, rank = distributed_replicas(None, None)
    sampler = DistributedSampler(items, num_replicas, rank, shuffle=False) if num_replicas > 1 else None
    return DataLoader(items, batch_size=batch_size, sampler=sampler, collate_fn=collate_fn)


class PromptDataModule(L.LightningDataModule):
    """Train prompts mixed MOS:pure at `mos_ratio`; held-out (val / test) prompts from source-disjoint splits.

    Args:
        manifest: prompts with MOS (a pairs manifest; rows per critique are deduplicated to pairs). A
            prompt counts as labeled when it has the three MOS or a single overall one (`overall_mos`).
        layout: how `manifest` and `pure_manifest` are read (a `data.adapters` name; default our
            manifest; `ie_critic_r1` reads IE-Critic-R1's training table).
        pure_manifest: pure source-edit pairs (MOS ignored even if present). When None, a hash-chosen
            `withheld_mos_share` of the train prompts loses its MOS and forms the pure pool.
        prompts_per_step: prompts per GRPO step (each is sampled `group_size` times by the module).
        mos_ratio: share of MOS prompts per step (paper: 0.7).
        val_prompts: cap on held-out prompts used for validation (None: the whole split).
    """

    def __init__(
        self,
        manifest: str | list[str],
        pure_manifest: str | list[str] | None = None,
        layout: str = "manifest",
        withheld_mos_share: float = 0.3,
        prompts_per_step: int = 4,
        mos_ratio: float = 0.7,
        split_ratios: dict[str, float] | None = None,
        split_salt: str = "ie-eval",
        strict: bool = True,
        eval_batch_size: int = 16,
        val_prompts: int | None = None,
        test_prompts: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.split_ratios = split_ratios or {"train": 0.8, "val": 0.1, "test": 0.1}
        self.splits: dict[str, list[EditRecord]] = {}
        self.sampler: PromptMixSampler | None = None

    def _read(self, manifest: str | list[str]) -> list[EditRecord]:
        manifests = [manifest] if isinstance(manifest, str) else list(manifest)
        if self.hparams.layout == "manifest":
            result = read_manifests(manifests, strict=self.hparams.strict)
        else:
            result = ManifestReadResult()
            for path in manifests:
                part = load_dataset(self.hparams.layout, path, strict=self.hparams.strict)
                result.records += part.records
                result.skipped += part.skipped
        if result.skipped:
            log.warning(result.summary())
        return unique_pairs(result.records)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        labeled = self._read(hp.manifest)
        self.splits = split_records(labeled, self.split_ratios, salt=hp.split_salt)
        train = self.splits.get("train", [])
        if hp.pure_manifest is not None:
            pure = [without_mos(r) for r in self._read(hp.pure_manifest)]
            pure_splits = split_records(pure, self.split_ratios, salt=hp.split_salt)
            train = [r for r in train if has_truth(r)] + pure_splits.get("train", [])
        else:
            train = withhold_mos(train, hp.withheld_mos_share, hp.split_salt)
        self.splits["train"] = train
        if not train:
            raise ValueError(f"{hp.manifest}: no train prompts after the split {self.split_ratios}")
        counts = {name: len(split) for name, split in self.splits.items()}
        log.info("GRPO prompts: %s (train with MOS: %d)", counts, sum(has_truth(r) for r in train))

    def train_dataloader(self) -> DataLoader:
        train = self.splits["train"]
        labeled = [i for i, r in enumerate(train) if has_truth(r)]
        pure = [i for i, r in enumerate(train) if not has_truth(r)]
        check_self_sharding(self.trainer, "GRPO prompts", "configs/grpo/*.yaml")
        self.sampler = PromptMixSampler(labeled, pure, self.hparams.prompts_per_step, self.hparams.mos_ratio,
                                        self.hparams.seed)
        loader = ResumableLoader(RecordDataset(train), batch_sampler=self.sampler, collate_fn=RecordBatch)
        loader.trainer = self.trainer
        return loader

    def _held_out(self, split: str, cap: int | None) -> DataLoader:
        records = self.splits.get(split, [])
        if not records:
            raise ValueError(f"split '{split}' is empty; check split_ratios {self.split_ratios}")
        records = sorted(records, key=lambda r: r.pair_id)[:cap] if cap else records
        return held_out_loader(RecordDataset(records), self.hparams.eval_batch_size, RecordBatch)

    def val_dataloader(self) -> DataLoader:
        return self._held_out("val", self.hparams.val_prompts)

    def test_dataloader(self) -> DataLoader:
        return self._held_out("test", self.hparams.test_prompts)
