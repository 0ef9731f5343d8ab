"""Zero-shot MLLM judge (paper section 6.2 and appendix E.4): reason, then answer with JSON scores.

Any backbone `load_backbone` accepts (tiny preset, hub id, local directory) is prompted with
`prompts.judge_messages` and decodes greedily. `parse_judge_scores` reads the answer robustly;
an answer it cannot read gives None, which the evaluation excludes and counts as a parse failure.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence

import torch

from ie_eval.data.collate import EditCollator, model_inputs
from ie_eval.data.prompts import judge_messages
from ie_eval.data.records import CRITIQUE_DIMS, MOS_DIMS, EditRecord
from ie_eval.eval.scorer_base import ScoreOutput, Scorer, ScorerOptions
from ie_eval.progress import track

LIKERT_RANGE: tuple[float, float] = (1.0, 5.0)
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*\d+(?:\.\d+)?)?\s*$")  # "4", "4.5", "4/5"
_FENCE = re.compile(r"```(?:json)?", flags=re.IGNORECASE)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def _key(name: str) -> str:
    """Dim key normalization: "Visual Quality", "visual-quality" and "visual_quality" agree."""
    return re.sub(r"[\s\-_]+", "_", name.strip().strip("\"'").lower())


def json_objects(text: str) -> list[str]:
    """Brace-balanced `{...}` spans of `text` (outermost only), in order of appearance."""
    spans, depth, start, in_string, escaped = [], 0, -1, False, False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"' and depth > 0:
            in_string = True
        elif char == "{":
            start = index if depth == 0 else start
            depth += 1
        elif char == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : index + 1])
    return spans


def _load_object(span: str) -> Mapping | None:
    """json.loads, then a lenient retry (single quotes, trailing commas); None if neither parses."""
    for candidate in (span, _TRAILING_COMMA.sub(r"\1", span.replace("'", '"'))):
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        return value if isinstance(value, Mapping) else None
    return None


def _score(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str) and (match := _NUMBER.match(value)):
        number = float(match.group(1))
    else:
        return None
    low, high = LIKERT_RANGE
    return number if math.isfinite(number) and low <= number <= high else None


def parse_judge_scores(text: str, dims: Sequence[str]) -> list[float] | None:
    """Scores for `dims` from the LAST JSON object in `text` that has all of them, else None.

    Tolerated: code fences, prose around the object, keys in any case / with spaces or hyphens,
    a nested object (e.g. {"scores": {...}}), numbers as strings ("4", "4/5"), single quotes,
    trailing commas. Rejected: a missing dim, a non-number, a value outside the 1-5 scale.
    """
    if not isinstance(text, str):
        return None
    wanted = [_key(d) for d in dims]
    for span in reversed(json_objects(_FENCE.sub("", text))):
        found = _find_scores(_load_object(span), wanted)
        if found is not None:
            return found
    return None


def _find_scores(obj: Mapping | None, wanted: Sequence[str]) -> list[float] | None:
    if obj is None:
        return None
    keyed = {_key(str(k)): v for k, v in obj.items()}
    if all(k in keyed for k in wanted):
        scores = [_score(keyed[k]) for k in wanted]
        return None if any(s is None for s in scores) else scores  # type: ignore[return-value]
    for value in obj.values():
        if isinstance(value, Mapping) and (found := _find_scores(value, wanted)) is not None:
            return found
    return None


class JudgeCollator(EditCollator):
    """EditCollator whose prompt is the zero-shot judge prompt (left-padded, generation mode)."""

    def __init__(self, processor, dims: Sequence[str], on_critique: bool, **kwargs) -> None:
        super().__init__(processor, task="critic", mode="generate", **kwargs)
        self.dims, self.on_critique = tuple(dims), on_critique

    def render_prompt(self, record: EditRecord) -> str:
        critique = record.critique if self.on_critique else None
        if self.on_critique and critique is None:
            raise ValueError(f"{record.sample_id}: judge-rm needs a record with a critique")
        template_kwargs = {"enable_thinking": False} if "enable_thinking" in str(self.processor.chat_template) else {}
        messages = judge_messages(record.instruction, self.dims, critique)
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                  **template_kwargs)


class JudgeScorer(Scorer):
    """`judge:BACKBONE` (edit, MOS dims) or `judge-rm:BACKBONE` (critique, critique dims)."""

    generative = True

    def __init__(self, backbone: str, options: ScorerOptions, on_critique: bool = False) -> None:
        super().__init__(f"{'judge-rm' if on_critique else 'judge'}:{backbone}")
        from ie_eval.models.backbone import load_backbone

        self.dims = CRITIQUE_DIMS if on_critique else MOS_DIMS
        self.needs_critique = on_critique
        self.options = options
        self.backbone = load_backbone(backbone, dtype="float32" if options.device == "cpu" else "bfloat16")
        self.backbone.model.to(options.device).eval()
        limits = {k: v for k, v in (("max_pixels", options.max_pixels), ("max_length", options.max_length)) if v}
        self.collator = JudgeCollator(self.backbone.processor, self.dims, on_critique, **limits)

    @torch.inference_mode()
    def generate(self, batch: dict) -> list[str]:
        """Greedy answers of a left-padded batch, prompt and special tokens removed."""
        inputs = model_inputs(batch)
        output = self.backbone.model.generate(
            **inputs, max_new_tokens=self.options.max_new_tokens, do_sample=False,
            eos_token_id=self.backbone.eos_token_ids, pad_token_id=self.backbone.pad_token_id,
        )
        return self.backbone.tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    def score(self, records: Sequence[EditRecord]) -> ScoreOutput:
        texts: list[str] = []
        device = torch.device(self.options.device)
        for start in track(range(0, len(records), self.options.batch_size), f"scoring {self.spec.split(':')[0]}"):
            batch = self.collator(records[start : start + self.options.batch_size])
            texts += self.generate({k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()})
        return ScoreOutput(scores=[parse_judge_scores(t, self.dims) for t in texts], texts=texts)

    def info(self) -> dict:
        return super().info() | {"backbone": self.backbone.name, "family": self.backbone.family,
                                 "max_new_tokens": self.options.max_new_tokens}
