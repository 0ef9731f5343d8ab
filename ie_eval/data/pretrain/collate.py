"""Collate pretraining samples through the same processor path as every other stage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ie_eval.data.collate import ChatCollator, CollateError, fit_to_budget
from ie_eval.data.pretrain.tasks import PretrainSample


def blank_like(image: np.ndarray) -> np.ndarray:
    """A mid-gray image of the same size: the no-vision control of the perception report."""
    return np.full_like(image, 128)


class PretrainCollator(ChatCollator):
    """`list[PretrainSample] -> dict` batch: prompt + answer (train) or left-padded prompt (generate).

    Besides the model inputs (see `ChatCollator`), the batch keeps `sample_ids`, `tasks` and
    `answers` (the reference texts); scoring against the truth reads the samples themselves.
    `blank_images=True` replaces every image with mid-gray (the no-vision control).
    """

    def __init__(self, processor: Any, mode: str = "train", blank_images: bool = False, **budget: Any) -> None:
        super().__init__(processor, mode=mode, **budget)
        self.blank_images = blank_images

    def __call__(self, samples: Sequence[PretrainSample]) -> dict[str, Any]:
        if not samples:
            raise CollateError("PretrainCollator: empty list of samples")
        images = [self.load_images(sample) for sample in samples]
        prompts = [self.chat_prompt(sample.messages) for sample in samples]
        answers = [sample.answer for sample in samples]
        batch = self.encode([s.sample_id for s in samples], prompts, images, answers)
        batch["sample_ids"] = [s.sample_id for s in samples]
        batch["tasks"] = [s.task for s in samples]
        batch["answers"] = answers
        return batch

    def load_images(self, sample: PretrainSample) -> list[Image.Image]:
        arrays = [blank_like(a) if self.blank_images else a for a in sample.images]
        return [
            fit_to_budget(Image.fromarray(a), self.factor, self.min_pixels, self.max_pixels, sample.sample_id)
            for a in arrays
        ]
