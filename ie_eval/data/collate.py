"""Collate `EditRecord`s into Qwen-VL batches: two images per sample, chat prompt, optional target.

The processor expands each `<|image_pad|>` to one token per merged patch, so prompts are never
truncated (that would cut image tokens and break the model); a prompt over `max_length` is an
error naming the sample. Critic SFT answers are tokenized apart from the prompt and appended,
so the supervised ids are exactly what generation from the same prompt has to produce.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

from ie_eval.data.critique_format import check_critique_format, sft_target
from ie_eval.data.prompts import critic_prompt, preference_messages, reward_messages
from ie_eval.data.records import CRITIQUE_DIMS, MOS_DIMS, EditRecord

TASKS: tuple[str, ...] = ("reward", "critic", "preference")
MODES: tuple[str, ...] = ("train", "score", "generate")
IGNORE_INDEX = -100
END_OF_TURN = "<|im_end|>"
# Batch keys a Qwen-VL forward / generate accepts; the rest are targets and bookkeeping.
MODEL_INPUT_KEYS: tuple[str, ...] = (
    "input_ids",
    "attention_mask",
    "pixel_values",
    "image_grid_thw",
    "mm_token_type_ids",
    "labels",
)


@dataclass(frozen=True)
class InputBudget:
    """The collator budget a model is trained with: per-image pixels of the smart resize and the
    longest sequence. Training records it in the export (`input_budget`); `critique`, `score`,
    `serve-rm`, `grpo` and `eval` read it back, so inference sees images as training did. These
    defaults (the paper's 262,144-pixel cap) are the only ones in the code."""

    max_pixels: int = 262_144
    min_pixels: int = 3_136
    max_length: int = 4_096

    @classmethod
    def of(cls, recorded: Mapping[str, int] | None = None, **overrides: int | None) -> InputBudget:
        """The recorded budget (an export's `input_budget`), then any override that is not None."""
        fields = {k: int(v) for k, v in (recorded or {}).items() if k in cls.__dataclass_fields__}
        fields |= {k: int(v) for k, v in overrides.items() if v is not None}
        budget = replace(cls(), **fields)
        return replace(budget, min_pixels=min(budget.min_pixels, budget.max_pixels))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class CollateError(ValueError):
    """A record that cannot be batched; the message names its sample_id (and path when relevant)."""


def model_inputs(batch: dict[str, Any], *, with_labels: bool = False) -> dict[str, Any]:
    """The part of a collated batch to pass as `model(**...)` or `model.generate(**...)`."""
    keys = [k for k in MODEL_INPUT_KEYS if with_labels or k != "labels"]
    return {k: batch[k] for k in keys if k in batch}


def load_rgb(path: str | Path, sample_id: str, role: str) -> Image.Image:
    """Open an image as RGB; an unreadable or missing file raises naming the sample and path."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as err:  # FileNotFoundError and UnidentifiedImageError are OSErrors
        raise CollateError(f"{sample_id}: cannot read {role} image {path}: {err}") from err


def fit_to_budget(
    image: Image.Image, factor: int, min_pixels: int, max_pixels: int, sample_id: str
) -> Image.Image:
    """Resize to the processor's smart-resize size (multiples of `factor`, pixels within budget, aspect kept).

    Done here with PIL so the processor's own (identical) resize becomes a no-op.
    """
    try:
        height, width = smart_resize(
            image.height, image.width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels
        )
    except ValueError as err:
        raise CollateError(f"{sample_id}: image of size {image.width}x{image.height}: {err}") from err
    if (height, width) == (image.height, image.width):
        return image
    return image.resize((width, height), Image.Resampling.BICUBIC)


def chat_template_kwargs(processor) -> dict:
    """The chat template's options every ie-eval prompt is rendered with."""
    if "enable_thinking" in str(processor.chat_template):
        # Qwen3.5 answers directly (empty think block), the same in SFT, scoring and generation.
        return {"enable_thinking": False}
    return {}


class ChatCollator:
    """Chat prompts with images (+ optional supervised answers) -> one padded Qwen-VL batch.

    The shared encoding path of every collator: the processor expands the images, prompts are
    checked against `max_length`, answers are tokenized apart and appended (`labels` hold them,
    prompt and padding at -100), rows are padded right (train / score) or left (generate).
    `EditCollator` builds its prompts from `EditRecord`s, the pretraining collator from
    rendered world samples.

    mode: "train" | "score" | "generate"; max_pixels / min_pixels: per-image budget of the smart
    resize (min defaults to the image processor's, clamped to max_pixels); max_length: longest
    allowed sequence (a prompt over it raises, an answer is cut to fit); prompt_suffix: text
    appended after the generation prompt (e.g. a score-anchor token).
    """

    def __init__(
        self,
        processor: Any,
        mode: str = "train",
        max_pixels: int = InputBudget.max_pixels,
        min_pixels: int | None = None,
        max_length: int = InputBudget.max_length,
        prompt_suffix: str = "",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"{type(self).__name__}: unknown mode {mode!r}; choose one of {MODES}")
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.mode = mode
        self.max_length = int(max_length)
        self.prompt_suffix = prompt_suffix
        image_processor = processor.image_processor
        self.factor = int(image_processor.patch_size * image_processor.merge_size)
        self.max_pixels = int(max_pixels)
        default_min = _size_value(image_processor.size, "shortest_edge", self.factor**2)
        self.min_pixels = min(int(min_pixels if min_pixels is not None else default_min), self.max_pixels)
        self.pad_token_id = pad_id(self.tokenizer)
        self.image_token_id = int(self.tokenizer.convert_tokens_to_ids(processor.image_token))
        self.end_of_turn = (
            END_OF_TURN if END_OF_TURN in self.tokenizer.get_vocab() else self.tokenizer.eos_token
        )

    def chat_prompt(self, messages: list[dict]) -> str:
        """Chat-templated prompt text ending in the assistant generation prompt (+ prompt_suffix)."""
        text = self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **chat_template_kwargs(self.processor)
        )
        return text + self.prompt_suffix

    def encode(
        self,
        sample_ids: Sequence[str],
        prompts: Sequence[str],
        images: Sequence[Sequence[Image.Image]],
        answers: Sequence[str | None],
    ) -> dict[str, Any]:
        """Model inputs, `labels` (train mode), prompt_mask and token counts for rendered prompts."""
        encoded = self.processor(
            text=list(prompts),
            images=[list(pair) for pair in images],
            padding=True,
            padding_side="right",
            return_tensors="pt",
            size={"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels},
        )
        rows = self.prompt_rows(encoded, sample_ids)
        answer_ids = [
            self.answer_ids(sample_id, answer, len(row["input_ids"]))
            for sample_id, answer, row in zip(sample_ids, answers, rows, strict=True)
        ]
        batch = self.pad_rows(rows, answer_ids)
        batch["pixel_values"] = encoded["pixel_values"]
        batch["image_grid_thw"] = encoded["image_grid_thw"]
        batch |= self.token_counts(batch["input_ids"], batch["attention_mask"])
        return batch

    def prompt_rows(self, encoded: Any, sample_ids: Sequence[str]) -> list[dict[str, torch.Tensor]]:
        """Unpadded per-sample token tensors (input_ids and any other (B, T) key) of the prompts."""
        input_ids, attention = encoded["input_ids"], encoded["attention_mask"].bool()
        token_keys = [
            k
            for k, v in encoded.items()
            if torch.is_tensor(v) and v.shape == input_ids.shape and k != "attention_mask"
        ]
        rows = []
        for index, sample_id in enumerate(sample_ids):
            keep = attention[index]
            length = int(keep.sum())
            if length > self.max_length:
                images = int((input_ids[index][keep] == self.image_token_id).sum())
                raise CollateError(
                    f"{sample_id}: prompt is {length} tokens ({images} image tokens) > max_length "
                    f"{self.max_length}; lower max_pixels (now {self.max_pixels}) or raise max_length"
                )
            rows.append({key: encoded[key][index][keep] for key in token_keys})
        return rows

    def answer_ids(self, sample_id: str, answer: str | None, prompt_length: int) -> torch.Tensor:
        """Target ids (answer + end-of-turn) in train mode, cut to fit max_length; else empty."""
        if self.mode != "train" or answer is None:
            return torch.zeros(0, dtype=torch.long)
        ids = self.tokenizer(answer + self.end_of_turn, add_special_tokens=False)["input_ids"]
        room = self.max_length - prompt_length
        if room <= 0:
            raise CollateError(f"{sample_id}: prompt of {prompt_length} tokens leaves no room for the target")
        return torch.tensor(ids[:room], dtype=torch.long)

    def pad_rows(
        self, rows: list[dict[str, torch.Tensor]], answers: list[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Prompt + answer per row, padded right (train/score) or left (generate) to a common length."""
        lengths = [len(row["input_ids"]) + len(answer) for row, answer in zip(rows, answers, strict=True)]
        batch_size, width = len(rows), max(lengths)
        left = self.mode == "generate"
        out = {key: torch.zeros(batch_size, width, dtype=tensor.dtype) for key, tensor in rows[0].items()}
        out["input_ids"].fill_(self.pad_token_id)
        out["attention_mask"] = torch.zeros(batch_size, width, dtype=torch.long)
        out["prompt_mask"] = torch.zeros(batch_size, width, dtype=torch.bool)
        labels = torch.full((batch_size, width), IGNORE_INDEX, dtype=torch.long)
        for index, (row, answer, length) in enumerate(zip(rows, answers, lengths, strict=True)):
            start = width - length if left else 0
            prompt_length = len(row["input_ids"])
            prompt_span = slice(start, start + prompt_length)
            answer_span = slice(start + prompt_length, start + length)
            for key, tensor in row.items():
                out[key][index, prompt_span] = tensor
            out["input_ids"][index, answer_span] = answer
            out["attention_mask"][index, start : start + length] = 1
            out["prompt_mask"][index, prompt_span] = True
            labels[index, answer_span] = answer
        if any(len(answer) for answer in answers):
            out["labels"] = labels
        return out

    def token_counts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B,) counts of non-pad image-placeholder tokens and of the other (text) tokens."""
        real = attention_mask.bool()
        images = ((input_ids == self.image_token_id) & real).sum(1)
        return {"num_image_tokens": images, "num_text_tokens": real.sum(1) - images}


class EditCollator(ChatCollator):
    """Callable `list[EditRecord] -> dict` batch for the reward model or the critic.

    task: "reward" (prompt = reward_messages with the record's critique), "critic"
        (prompt = critic_prompt in `critique_format`; in train mode the record's critique, written in
        that format by `critique_format.sft_target`, is the SFT target) or "preference" (prompt =
        preference_messages: the edit alone, for the pairwise reward model).
    critique_format: the critic's ("sections" or "think_answer"; prompts.CRITIQUE_FORMATS).
    mode: "train" (right padding; critic gets `labels` with prompt and padding at -100),
        "score" (prompt only, right padding) or "generate" (prompt only, left padding,
        ending in the generation prompt). Budget and suffix: see `ChatCollator`.

    Batch keys: input_ids, attention_mask, pixel_values, image_grid_thw, mm_token_type_ids
    (when the processor emits it), labels (critic + train), prompt_mask (B, T) bool,
    num_image_tokens / num_text_tokens (B,), sample_ids, mos (B, 3) + mos_mask (B,),
    critique_scores (B, 3) + critique_scores_mask (B,), has_critique (B,). Missing scores are NaN.
    Generate mode also keeps prompt_texts (B rendered prompts) and prompt_images (B [source, edited]
    PIL images, already resized to the budget), the inputs of an engine that runs its own processor.
    """

    def __init__(self, processor: Any, task: str = "reward", mode: str = "train", critique_format: str = "sections",
                 **budget: Any) -> None:
        if task not in TASKS:
            raise ValueError(f"EditCollator: unknown task {task!r}; choose one of {TASKS}")
        super().__init__(processor, mode=mode, **budget)
        self.task, self.critique_format = task, check_critique_format(critique_format)

    @property
    def supervises_text(self) -> bool:
        return self.task == "critic" and self.mode == "train"

    def __call__(self, records: Sequence[EditRecord]) -> dict[str, Any]:
        if not records:
            raise CollateError("EditCollator: empty list of records")
        images = [self.load_pair(record) for record in records]
        prompts = [self.render_prompt(record) for record in records]
        answers = [self.answer(record) if self.supervises_text else None for record in records]
        batch = self.encode([record.sample_id for record in records], prompts, images, answers)
        if self.supervises_text and "labels" not in batch:
            batch["labels"] = torch.full_like(batch["input_ids"], IGNORE_INDEX)
        batch |= targets(records)
        if self.mode == "generate":  # what an engine with its own processor (vLLM) is given instead of tensors
            batch["prompt_texts"], batch["prompt_images"] = prompts, images
        return batch

    def answer(self, record: EditRecord) -> str | None:
        """The SFT target of a critic record in this collator's critique format (None: score-only sample)."""
        if record.critique is None:
            return None
        target = sft_target(record.critique, self.critique_format)
        if target is None:
            raise CollateError(
                f"{record.sample_id}: critique cannot be written as {self.critique_format!r} (its final assessment "
                "does not parse into three scores)"
            )
        return target

    def load_pair(self, record: EditRecord) -> list[Image.Image]:
        """[source, edited] as RGB, resized to the pixel budget."""
        pair = [
            load_rgb(record.source_image, record.sample_id, "source"),
            load_rgb(record.edited_image, record.sample_id, "edited"),
        ]
        return [
            fit_to_budget(img, self.factor, self.min_pixels, self.max_pixels, record.sample_id)
            for img in pair
        ]

    def render_prompt(self, record: EditRecord) -> str:
        """Chat-templated prompt text ending in the assistant generation prompt (+ prompt_suffix)."""
        if self.task == "reward":
            if record.critique is None:
                raise CollateError(f"{record.sample_id}: task 'reward' needs a critique, the record has none")
            messages = reward_messages(record.instruction, record.critique)
        elif self.task == "preference":
            messages = preference_messages(record.instruction)
        else:
            messages = critic_prompt(record.instruction, self.critique_format)
        return self.chat_prompt(messages)


def targets(records: Sequence[EditRecord]) -> dict[str, Any]:
    """Sample ids, MOS and critique-score targets (NaN where missing) with their masks."""
    return {
        "sample_ids": [record.sample_id for record in records],
        "mos": _score_matrix([record.mos for record in records], len(MOS_DIMS)),
        "mos_mask": torch.tensor([record.mos is not None for record in records], dtype=torch.bool),
        "critique_scores": _score_matrix([record.critique_scores for record in records], len(CRITIQUE_DIMS)),
        "critique_scores_mask": torch.tensor(
            [record.critique_scores is not None for record in records], dtype=torch.bool
        ),
        "has_critique": torch.tensor([record.critique is not None for record in records], dtype=torch.bool),
    }


def _score_matrix(rows: Sequence[Sequence[float] | None], width: int) -> torch.Tensor:
    """(B, width) float32, NaN rows where the score is missing."""
    out = torch.full((len(rows), width), math.nan, dtype=torch.float32)
    for index, row in enumerate(rows):
        if row is not None:
            out[index] = torch.tensor([float(v) for v in row], dtype=torch.float32)
    return out


def pad_id(tokenizer: Any) -> int:
    """The tokenizer's padding id, falling back to eos (Qwen tokenizers may define only eos)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError(f"{type(tokenizer).__name__} has neither a pad nor an eos token")
    return int(pad)


def _size_value(size: Any, key: str, default: int) -> int:
    """Read `shortest_edge`/`longest_edge` from a dict or SizeDict image-processor size."""
    value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
    return int(value) if value else default
