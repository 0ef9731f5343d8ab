"""DataModule: reads manifests, normalizes scores, splits by source, samples and collates.

The collator needs the model's processor (a model may add tokens such as `<SCORE_ANCHOR>`),
so the DataModule takes it from the LightningModule it is trained with, or from `processor=`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

from ie_eval.data.collate import EditCollator, InputBudget
from ie_eval.data.length_buckets import text_length
from ie_eval.data.normalize import normalize_records
from ie_eval.data.readers import read_manifests
from ie_eval.data.records import EditRecord
from ie_eval.data.resumable import ResumableLoader
from ie_eval.data.sampler import StratifiedEditSampler
from ie_eval.data.splits import split_records

log = logging.getLogger(__name__)

# What a record must carry for each task to be trainable / evaluable.
TASK_TARGETS = {"reward": ("critique", "critique_scores"), "critic": ("mos",)}


class RecordDataset(Dataset):
    def __init__(self, records: Sequence[EditRecord]) -> None:
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> EditRecord:
        return self.records[index]


def check_targets(records: Sequence[EditRecord], task: str, where: str) -> None:
    """Every record of a supervised split must carry its task's targets; name the first offenders."""
    required = TASK_TARGETS[task]
    missing = [r.sample_id for r in records if any(getattr(r, name) is None for name in required)]
    if missing:
        raise ValueError(
            f"{where}: {len(missing)} record(s) lack {' / '.join(required)} required for task '{task}', "
            f"e.g. {missing[:5]}"
        )


def blank_images(records: Sequence[EditRecord], blank_path) -> list[EditRecord]:
    """Same records with both images replaced (the vision-path ablation of the RE-Reward acceptance)."""
    return [replace(r, source_image=blank_path, edited_image=blank_path) for r in records]


def module_collator_inputs(datamodule: L.LightningDataModule) -> tuple[Any, str]:
    """(processor, prompt_suffix) of the LightningModule the DataModule is trained with (the model may add
    tokens such as `<SCORE_ANCHOR>`, so the collator must use the model's own processor)."""
    module = datamodule.trainer.lightning_module if datamodule.trainer is not None else None
    processor = getattr(module, "processor", None)
    if processor is None:
        raise RuntimeError(f"{type(datamodule).__name__} needs a processor: attach it to a module with `.processor`")
    return processor, getattr(module, "prompt_suffix", "")


class EditDataModule(L.LightningDataModule):
    """Train / val / test / predict loaders over source-disjoint splits of one or more manifests.

    length_bucket_batches: W > 0 makes each training step's batch hold samples of similar text length
    (sorted within windows of W steps' batches, `length_buckets`): less padding, no longer uniform batches;
    None (the default): uniformly shuffled batches.
    """

    def __init__(
        self,
        manifest: str | list[str],
        task: str = "reward",
        split_ratios: dict[str, float] | None = None,
        split_salt: str = "ie-eval",
        strict: bool = True,
        score_normalization: str = "none",
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        max_pixels: int = InputBudget.max_pixels,
        min_pixels: int = InputBudget.min_pixels,
        max_length: int = InputBudget.max_length,
        max_pairs_per_source: int | None = 6,
        max_critiques_per_pair: int | None = 3,
        seed: int = 0,
        predict_split: str = "test",
        length_bucket_batches: int | None = None,
    ) -> None:
        super().__init__()
        if task not in TASK_TARGETS:
            raise ValueError(f"unknown task '{task}'; choose one of {sorted(TASK_TARGETS)}")
        self.save_hyperparameters()
        self.manifests = [manifest] if isinstance(manifest, str) else list(manifest)
        self.split_ratios = split_ratios or {"train": 0.8, "val": 0.1, "test": 0.1}
        self.splits: dict[str, list[EditRecord]] = {}
        self.processor: Any = None
        self.prompt_suffix = ""
        self.critique_format = "sections"

    def _resolve_processor(self) -> Any:
        if self.processor is None and self.trainer is not None:
            module = self.trainer.lightning_module
            self.processor = getattr(module, "processor", None)
            self.prompt_suffix = getattr(module, "prompt_suffix", "")
            # The critic's format is the model's (recorded in its export), never a second data-side setting.
            self.critique_format = getattr(module, "critique_format", "sections")
        if self.processor is None:
            raise RuntimeError("EditDataModule needs a processor: attach it to a module with `.processor` or set it")
        return self.processor

    def load_records(self) -> list[EditRecord]:
        result = read_manifests(self.manifests, strict=self.hparams.strict)
        if result.skipped:
            log.warning(result.summary())
        records = result.records
        if self.hparams.score_normalization != "none":
            records = normalize_records(records, method=self.hparams.score_normalization)
        return records

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        records = self.load_records()
        self.splits = split_records(records, self.split_ratios, salt=self.hparams.split_salt)
        where = ", ".join(self.manifests)
        for name, split in self.splits.items():
            check_targets(split, self.hparams.task, f"{where} [{name} split]")
        log.info("splits: %s", {name: len(split) for name, split in self.splits.items()})

    def collator(self, mode: str) -> EditCollator:
        return EditCollator(
            self._resolve_processor(), task=self.hparams.task, mode=mode, max_pixels=self.hparams.max_pixels,
            min_pixels=self.hparams.min_pixels, max_length=self.hparams.max_length,
            prompt_suffix=self.prompt_suffix, critique_format=self.critique_format,
        )

    def _loader(self, split: str, train: bool) -> DataLoader:
        records = self.splits.get(split, [])
        if not records:
            raise ValueError(f"split '{split}' is empty; check split_ratios {self.split_ratios}")
        sampler = StratifiedEditSampler(
            records,
            max_pairs_per_source=self.hparams.max_pairs_per_source if train else None,
            max_critiques_per_pair=self.hparams.max_critiques_per_pair if train else None,
            shuffle=train,
            seed=self.hparams.seed,
            **(self.length_buckets(records) if train else {}),
        )
        loader = ResumableLoader(
            RecordDataset(records),
            batch_size=self.hparams.batch_size if train else (self.hparams.eval_batch_size or self.hparams.batch_size),
            sampler=sampler,
            collate_fn=self.collator("train" if train else "score"),
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )
        loader.trainer = self.trainer if train else None
        return loader

    def length_buckets(self, records: list[EditRecord]) -> dict[str, Any]:
        """The sampler's bucketing arguments: batches of one step across all ranks, of similar text length."""
        window = self.hparams.length_bucket_batches
        if not window:
            return {}
        trainer = self.trainer
        replicas = trainer.world_size if trainer is not None else 1
        return {"lengths": [text_length(r) for r in records], "bucket_batch_size": self.hparams.batch_size * replicas,
                "bucket_window": window}

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.hparams.predict_split, train=False)
