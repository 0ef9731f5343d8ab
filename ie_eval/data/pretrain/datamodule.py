"""DataModule of the pretraining stage: an endless seeded stream of world tasks, resumable by index.

Sample i of the train stream is a pure function of (seed, TRAIN_STREAM, i) and of the task mix
of the curriculum stage its optimizer step falls in, so the stream needs no storage and a
resumed run continues at the next unseen index: the sampler starts at
`global_step * batch_size * accumulate_grad_batches` of the restored trainer. Validation uses
fixed held-out samples per task (`HELDOUT_STREAM`), with the images and, as a second loader,
with blank images (the no-vision control of every validation number).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset, Sampler

from ie_eval.data.pretrain.collate import PretrainCollator
from ie_eval.data.pretrain.tasks import (
    TASKS,
    TRAIN_STREAM,
    PretrainSample,
    TaskMix,
    heldout_samples,
    make_sample,
)


@dataclass(frozen=True)
class CurriculumStage:
    """Optimizer steps [previous stage's end, until_step) draw their tasks from `mix`."""

    until_step: int
    mix: TaskMix


def build_curriculum(base: TaskMix, stages: list[dict] | None) -> list[CurriculumStage]:
    """Stages from config (`{until_step, <TaskMix field overrides>}`), increasing; `base` after the last."""
    built, previous = [], 0
    for stage in stages or []:
        fields = dict(stage)
        until = int(fields.pop("until_step"))
        if until <= previous:
            raise ValueError(f"curriculum: until_step values must increase, got {until} after {previous}")
        built.append(CurriculumStage(until, replace(base, **fields)))
        previous = until
    return built


class WorldStream(Dataset):
    """Map-style view of a seed stream: item i is sample i of (seed, stream), drawn with the task
    mix of the curriculum stage of its optimizer step (i // samples_per_step)."""

    def __init__(
        self, seed: int, stream: int, mix: TaskMix, length: int,
        curriculum: list[CurriculumStage] | None = None, samples_per_step: int = 1,
    ) -> None:
        self.seed, self.stream, self.mix, self.length = seed, stream, mix, int(length)
        self.curriculum, self.samples_per_step = list(curriculum or []), int(samples_per_step)

    def __len__(self) -> int:
        return self.length

    def mix_at(self, index: int) -> TaskMix:
        step = index // self.samples_per_step
        return next((stage.mix for stage in self.curriculum if step < stage.until_step), self.mix)

    def __getitem__(self, index: int) -> PretrainSample:
        return make_sample(self.seed, self.stream, int(index), self.mix_at(int(index)))


class FromIndex(Sampler[int]):
    """Indices start, start + 1, ..., length - 1: a stream read in order from where a run stopped."""

    def __init__(self, start: int, length: int) -> None:
        self.start, self.length = int(start), int(length)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.length))

    def __len__(self) -> int:
        return max(0, self.length - self.start)


class PretrainDataModule(L.LightningDataModule):
    """Loaders over the world stream (train) and fixed held-out samples per task (val, images and blank).

    Args:
        seed: world seed; the streams are `TRAIN_STREAM` / `HELDOUT_STREAM` of it.
        mix: task weights and sample shape (`TaskMix` fields) after the curriculum.
        curriculum: earlier stages, each `{until_step: N, <TaskMix overrides>}`: e.g. describing
            images alone first, so the vision tower learns to see before comparison tasks need it.
        batch_size / eval_batch_size / num_workers: loader settings.
        val_samples_per_task: held-out samples per task in validation.
        max_pixels / min_pixels / max_length: the collator budget (recorded in the export).
    """

    def __init__(
        self,
        seed: int = 0,
        mix: dict | None = None,
        curriculum: list[dict] | None = None,
        batch_size: int = 16,
        eval_batch_size: int = 32,
        num_workers: int = 0,
        val_samples_per_task: int = 64,
        max_pixels: int = 16_384,
        min_pixels: int = 1_024,
        max_length: int = 1_024,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.mix = TaskMix(**(mix or {}))
        self.curriculum = build_curriculum(self.mix, curriculum)
        self.processor: Any = None

    @property
    def budget(self) -> dict[str, int]:
        return {k: int(self.hparams[k]) for k in ("max_pixels", "min_pixels", "max_length")}

    def _processor(self) -> Any:
        if self.processor is None and self.trainer is not None:
            self.processor = getattr(self.trainer.lightning_module, "processor", None)
        if self.processor is None:
            raise RuntimeError("PretrainDataModule needs a processor: attach it to a module with `.processor` or set it")
        return self.processor

    def train_length(self) -> int:
        """Samples the whole run reads: max_steps optimizer steps of (batch x accumulation) samples."""
        trainer = self.trainer
        if trainer is None or trainer.max_steps is None or trainer.max_steps < 0:
            raise ValueError("pretraining reads an endless stream: set trainer.max_steps")
        return int(trainer.max_steps) * self.samples_per_step()

    def samples_per_step(self) -> int:
        accumulate = self.trainer.accumulate_grad_batches if self.trainer is not None else 1
        return int(self.hparams.batch_size) * int(accumulate)

    def train_dataloader(self) -> DataLoader:
        start = int(self.trainer.global_step) * self.samples_per_step() if self.trainer is not None else 0
        stream = WorldStream(
            self.hparams.seed, TRAIN_STREAM, self.mix, self.train_length(), self.curriculum, self.samples_per_step()
        )
        return DataLoader(
            stream,
            batch_size=self.hparams.batch_size,
            sampler=FromIndex(start, len(stream)),
            collate_fn=PretrainCollator(self._processor(), mode="train", **self.budget),
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def val_samples(self) -> list[PretrainSample]:
        count = int(self.hparams.val_samples_per_task)
        return [s for task in TASKS for s in heldout_samples(task, count, self.hparams.seed, self.mix)]

    def val_dataloader(self) -> list[DataLoader]:
        samples = self.val_samples()
        return [
            DataLoader(
                samples,
                batch_size=self.hparams.eval_batch_size,
                collate_fn=PretrainCollator(self._processor(), mode="train", blank_images=blank, **self.budget),
            )
            for blank in (False, True)
        ]

    def mix_dict(self) -> dict:
        """The task mix and curriculum, for provenance."""
        return {**asdict(self.mix), "curriculum": [{"until_step": c.until_step, **asdict(c.mix)} for c in self.curriculum]}
