"""The one RE-Reward scoring path: GRPO in-process, the HTTP server and `ie-eval eval` all run it.

`RewardScoring.score(items)` is the in-process `RewardScorer` (GRPO with `reward_source.ckpt`).
`prepare_record` turns a `RewardItem` into an `EditRecord` holding its decoded, budget-fitted
images (the server does this when it admits a request, off the model's thread);
`score_records` sorts records by approximate prompt length, keeping the critiques of one edit
together, collates them in batches of `batch_size` with the training collator, runs the score-only
forward pass (each prefix that rows share run once: `models.shared_prefix`) and returns
(logicality, accuracy, usefulness, weighted reward) in the records' original order.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ie_eval.data.chat_inputs import IMAGES_KEY, PreloadedCollator
from ie_eval.data.collate import CollateError, InputBudget, fit_to_budget, load_rgb
from ie_eval.data.records import CRITIQUE_DIMS, EditRecord
from ie_eval.models.reward_model import RewardModel
from ie_eval.progress import track
from ie_eval.serve.base import ImageLike, RewardItem, RewardScores, RewardServerError

# Characters per text token, only for ordering records by length before batching.
_CHARS_PER_TOKEN = 4
# Score the rows of a batch that share images and instruction (the G critiques of a GRPO prompt)
# with that prefix run once. Exact (same scores to float rounding), so on unless a run says otherwise.
SHARE_PREFIXES = True


def as_rgb(image: ImageLike, sample_id: str, role: str) -> Image.Image:
    """A PIL image as RGB; a path is opened (errors name the sample, role and path)."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, (str, Path)):
        return load_rgb(image, sample_id, role)
    raise CollateError(f"{sample_id}: {role} image must be a PIL image or a path, got {type(image).__name__}")


def check_text(value: object, field: str, sample_id: str) -> str:
    """A non-blank string that encodes as UTF-8 (lone surrogates do not), else CollateError naming the field."""
    if not isinstance(value, str):
        raise CollateError(f"{sample_id}: {field} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise CollateError(f"{sample_id}: {field} is blank")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise CollateError(f"{sample_id}: {field} is not valid UTF-8 text: {err.reason}") from None
    return value


class RewardScoring:
    """Model + collator + reward weights: `score_records` is the whole score-only path; `score`
    is the same path as a `RewardScorer` (thread-safe: one lock serializes use of the model).

    Bad input to `score` raises `RewardServerError` with status 422 and the item's field
    (`items.<i>`), as the server refuses it, so callers handle one exception type whichever
    scorer they hold.
    batch_size: records per forward pass (records are sorted by length first, so each batch
        pads little). reward_weights: (logicality, accuracy, usefulness), default the model's.
    max_pixels / max_length: collator budget; None keeps the model's training budget (`input_budget`).
    share_prefixes: run each prefix that a batch's rows share once (`RewardModel.score_shared_prefixes`);
        False runs every row's whole prompt (`RewardModel.forward`).
    """

    def __init__(
        self,
        model: RewardModel,
        batch_size: int = 32,
        reward_weights: Sequence[float] | None = None,
        max_pixels: int | None = None,
        max_length: int | None = None,
        share_prefixes: bool = SHARE_PREFIXES,
    ) -> None:
        if tuple(model.dims) != CRITIQUE_DIMS:
            raise ValueError(f"RewardScoring needs a critique reward model with dims {CRITIQUE_DIMS}, got {model.dims}")
        if batch_size < 1:
            raise ValueError(f"RewardScoring: batch_size must be >= 1, got {batch_size}")
        self.model = model.eval()
        self.batch_size = int(batch_size)
        self.share_prefixes = bool(share_prefixes)
        weights = model.reward_weights if reward_weights is None else torch.tensor(list(reward_weights))
        self.reward_weights = weights.detach().float().cpu()
        budget = InputBudget.of(model.input_budget, max_pixels=max_pixels, max_length=max_length)
        self.collator = PreloadedCollator(
            model.processor, task="reward", mode="score", prompt_suffix=model.prompt_suffix, **budget.as_dict()
        )
        self.device = next(model.parameters()).device
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str = "cpu", batch_size: int = 32, **options: Any
    ) -> RewardScoring:
        """Load a `RewardModel.save_pretrained` directory; `options`: reward_weights, max_pixels, max_length."""
        return cls(RewardModel.from_pretrained(directory, device=device), batch_size=batch_size, **options)

    def score(self, items: Sequence[RewardItem]) -> list[RewardScores]:
        """One `RewardScores` per item, in order; an empty list scores to an empty list."""
        if not items:
            return []
        try:
            with self._lock:
                return self.score_records([self.prepare_record(item, f"items.{i}") for i, item in enumerate(items)])
        except CollateError as err:
            message = str(err)
            field = message.split(":", 1)[0] if message.startswith("items.") else None
            raise RewardServerError(f"RewardScoring: {message}", status=422, field=field) from err

    def prepare_record(self, item: RewardItem, sample_id: str) -> EditRecord:
        """Validate the texts, decode and budget-fit both images: a record ready for `score_records`."""
        instruction = check_text(item.instruction, "instruction", sample_id)
        critique = check_text(item.critique, "critique", sample_id)
        images = tuple(
            self.fit(as_rgb(image, sample_id, role), sample_id)
            for image, role in ((item.source_image, "source"), (item.edited_image, "edited"))
        )
        return EditRecord(
            pair_id=sample_id, source_id=sample_id, source_image=Path(f"<{sample_id}:source>"),
            edited_image=Path(f"<{sample_id}:edited>"), instruction=instruction, critique=critique,
            meta={IMAGES_KEY: images},
        )

    def fit(self, image: Image.Image, sample_id: str) -> Image.Image:
        """Resize to the collator's smart-resize size (raises CollateError on unusable shapes)."""
        c = self.collator
        return fit_to_budget(image, c.factor, c.min_pixels, c.max_pixels, sample_id)

    def score_records(self, records: Sequence[EditRecord], progress: str | None = None) -> list[RewardScores]:
        """Scores of `records` in their order, computed in length-sorted batches of `batch_size`.
        progress: description of a progress bar over the batches (None, as for server requests: no bar)."""
        results: list[RewardScores | None] = [None] * len(records)
        for indices, batch_scores in self.scored_batches(records, progress):
            for index, scores in zip(indices, batch_scores, strict=True):
                results[index] = scores
        return results  # type: ignore[return-value]  # every index was filled above

    def scored_batches(
        self, records: Sequence[EditRecord], progress: str | None = None
    ) -> Iterator[tuple[list[int], list[RewardScores]]]:
        """(indices into `records`, their scores) per length-sorted batch, as each batch finishes
        (what `ie-eval score` appends to its output as it goes)."""
        order = length_order(records, self.collator.factor)
        starts = range(0, len(order), self.batch_size)
        for start in track(starts, progress) if progress else starts:
            chunk = order[start : start + self.batch_size]
            yield chunk, self.score_batch([records[i] for i in chunk])

    @torch.inference_mode()
    def score_batch(self, records: Sequence[EditRecord]) -> list[RewardScores]:
        """One collate + forward: (B, 3) critique scores and their weighted reward."""
        batch = to_device(self.collator(records), self.device)
        model = self.model
        scores = (model.score_shared_prefixes(batch) if self.share_prefixes else model(batch)).float().cpu()
        rewards = scores @ self.reward_weights  # (B,)
        return [
            RewardScores(logicality=float(row[0]), accuracy=float(row[1]), usefulness=float(row[2]), reward=float(r))
            for row, r in zip(scores.tolist(), rewards.tolist(), strict=True)
        ]

    def info(self) -> dict[str, Any]:
        """What is being served: backbone, adapter, pooling, dims and weights."""
        adapter = self.model.adapter_config
        return {
            "model": str(self.model.backbone_spec.get("name")),
            "family": self.model.family,
            "adapter": adapter.kind if adapter is not None else None,
            "pooling": self.model.pooling,
            "dims": list(self.model.dims),
            "reward_weights": [float(w) for w in self.reward_weights.tolist()],
            "device": str(self.device),
            "share_prefixes": self.share_prefixes,
        }


def length_order(records: Sequence[EditRecord], factor: int) -> list[int]:
    """Indices of `records`, longest first, the records of one edit (`edit_key`) next to each other so that a
    batch holds whole groups whose prefix can be shared; an edit's records are ordered by their own length."""
    lengths = [approx_tokens(record, factor) for record in records]
    keys = [edit_key(record) for record in records]
    longest: dict[bytes, int] = {}
    for key, length in zip(keys, lengths, strict=True):
        longest[key] = max(length, longest.get(key, 0))
    return sorted(range(len(records)), key=lambda i: (-longest[keys[i]], keys[i], -lengths[i]))


def edit_key(record: EditRecord) -> bytes:
    """Equal for records of the same instruction and images (their pixels, or their paths when not loaded).

    Only orders records: the model compares the collated tokens and pixels itself before sharing."""
    digest = hashlib.blake2b(record.instruction.encode("utf-8"), digest_size=16)
    images = record.meta.get(IMAGES_KEY)
    for image in images or (record.source_image, record.edited_image):
        if isinstance(image, Image.Image):
            digest.update(f"{image.mode}{image.size}".encode())
            digest.update(image.tobytes())
        else:
            digest.update(str(image).encode("utf-8") + b"\0")
    return digest.digest()


def approx_tokens(record: EditRecord, factor: int) -> int:
    """Rough prompt length (image tokens + text tokens), the sort key that keeps padding low."""
    images = record.meta.get(IMAGES_KEY) or ()
    image_tokens = sum(img.width * img.height // (factor * factor) for img in images)
    text = len(record.instruction) + len(record.critique or "")
    return image_tokens + text // _CHARS_PER_TOKEN


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move every tensor of a collated batch to `device` (lists such as sample_ids stay)."""
    return {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}
