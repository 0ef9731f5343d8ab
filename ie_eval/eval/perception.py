"""Perception report of a backbone pretrained on the synthetic world: what it names correctly.

On held-out samples of the pretraining world (`HELDOUT_STREAM`, disjoint from training and
from the benchmark) the model decodes greedily, and each output is scored against the
construction truth:

- describe: objects are matched to the true ones by an optimal assignment on agreeing
  attributes; size, colour, shape and cell accuracy are over the TRUE objects (a missed object
  is wrong on every attribute); plus background colour / texture and the global look.
- change: exact `target`, `others` and `quality` facts, per task type; "change named" means
  target and others both right (which object, which attribute, what else changed).
- verification: share of claims answered right, for edit claims and image claims.
- questions: share of questions about one image (what is at a place, the colour / place / size
  of a named shape, the shape of a coloured object) answered exactly.

Every number comes with the same model on blank (mid-gray) images and with chance: the share
the most frequent true value has (what always naming it scores), 0.5 for balanced claims.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ie_eval.data.collate import model_inputs
from ie_eval.data.pretrain.collate import PretrainCollator
from ie_eval.data.pretrain.describe import Description, parse_description, reading_order
from ie_eval.data.pretrain.tasks import (
    FALSE_WORD,
    HELDOUT_STREAM,
    TASKS,
    TRUE_WORD,
    PretrainSample,
    TaskMix,
    heldout_samples,
)
from ie_eval.data.synth.facts import FACT_KEYS
from ie_eval.metrics.factuality import claim_template

OBJECT_ATTRIBUTES: tuple[str, ...] = ("size", "color", "kind", "cell")
_CHANGE = re.compile(r"target:\s*(?P<target>.*?)\.\s*others:\s*(?P<others>.*?)\.\s*quality:\s*(?P<quality>.*?)\.?\s*$", re.S)
_VERDICT = re.compile(rf"\b({TRUE_WORD}|{FALSE_WORD})\b")


# --- scoring one output -------------------------------------------------------------------------
def match_objects(truth: Sequence[Any], predicted: Sequence[Any]) -> list[tuple[Any, Any | None]]:
    """(true object, matched prediction or None) for every true object, maximizing agreeing attributes."""
    if not truth:
        return []
    if not predicted:
        return [(t, None) for t in truth]
    agree = np.asarray(
        [[sum(getattr(t, a) == getattr(p, a) for a in OBJECT_ATTRIBUTES) for p in predicted] for t in truth]
    )
    rows, cols = linear_sum_assignment(-agree)
    matched = {int(r): predicted[int(c)] for r, c in zip(rows, cols, strict=True)}
    return [(t, matched.get(i)) for i, t in enumerate(truth)]


def score_description(text: str, truth: Mapping[str, Any]) -> dict[str, list[bool]]:
    """Per-attribute hits of one description: one entry per true object, and one per image field."""
    parsed: Description = parse_description(text)
    scene, look = truth["scene"], truth["look"]
    hits: dict[str, list[bool]] = defaultdict(list)
    for obj, guess in match_objects(reading_order(scene.objects), parsed.objects):
        for attribute in OBJECT_ATTRIBUTES:
            hits[attribute].append(guess is not None and getattr(guess, attribute) == getattr(obj, attribute))
        hits["object"].append(guess is not None and all(getattr(guess, a) == getattr(obj, a) for a in OBJECT_ATTRIBUTES))
    hits["object_count"].append(len(parsed.objects) == len(scene.objects))
    hits["background_color"].append(parsed.background_color == scene.background.color)
    hits["background_texture"].append(parsed.background_texture == scene.background.texture)
    hits["look"].append(parsed.look == look)
    return hits


def parse_change(text: str) -> dict[str, str | None]:
    match = _CHANGE.search(text.strip())
    return {key: (match[key].strip() if match else None) for key in FACT_KEYS}


def score_change(text: str, truth: Mapping[str, Any]) -> dict[str, bool]:
    parsed, facts = parse_change(text), truth["facts"]
    hits = {key: parsed[key] == facts[key].text for key in FACT_KEYS}
    hits["change"] = hits["target"] and hits["others"]
    return hits


def parse_verdicts(text: str, count: int) -> list[bool | None]:
    """The first `count` true/false words of an answer, None where missing."""
    words = [w == TRUE_WORD for w in _VERDICT.findall(text.lower())]
    return [words[i] if i < len(words) else None for i in range(count)]


def parse_answers(text: str, count: int) -> list[str | None]:
    """"1 red; 2 on the left" -> ["red", "on the left"] (a single answer stands alone); None where missing."""
    text = text.strip().rstrip(".")
    if count == 1:
        return [text or None]
    parts = [re.sub(r"^\d+\s*", "", p.strip()) for p in text.split(";")]
    return [parts[i] if i < len(parts) and parts[i] else None for i in range(count)]


def score_answers(text: str, truth: Mapping[str, Any]) -> list[bool]:
    answers = list(truth["answers"])
    return [guess == answer for guess, answer in zip(parse_answers(text, len(answers)), answers, strict=True)]


def score_verdicts(text: str, truth: Mapping[str, Any]) -> list[bool]:
    labels = list(truth["labels"])
    return [guess == label for guess, label in zip(parse_verdicts(text, len(labels)), labels, strict=True)]


# --- chance ---------------------------------------------------------------------------------
def majority_share(values: Iterable[object]) -> float:
    counts = Counter(values)
    total = sum(counts.values())
    return max(counts.values()) / total if total else 0.0


def chance_levels(samples: Mapping[str, Sequence[PretrainSample]]) -> dict[str, float]:
    """Accuracy of always naming the most frequent true value, per reported field."""
    chance: dict[str, float] = {}
    scenes = [s.truth for s in samples.get("describe", [])]
    objects = [o for t in scenes for o in t["scene"].objects]
    for attribute in OBJECT_ATTRIBUTES:
        chance[f"describe/{attribute}"] = majority_share(getattr(o, attribute) for o in objects)
    chance["describe/background_color"] = majority_share(t["scene"].background.color for t in scenes)
    chance["describe/background_texture"] = majority_share(t["scene"].background.texture for t in scenes)
    chance["describe/look"] = majority_share(t["look"] for t in scenes)
    changes = [s.truth["facts"] for s in samples.get("change", [])]
    for key in FACT_KEYS:
        chance[f"change/{key}"] = majority_share(f[key].text for f in changes)
    chance["change/change"] = majority_share((f["target"].text, f["others"].text) for f in changes)
    for task in ("verify_edit", "verify_image"):
        labels = [label for s in samples.get(task, []) for label in s.truth["labels"]]
        chance[f"{task}/claims"] = majority_share(labels)
    by_template: dict[str, list[str]] = defaultdict(list)
    for sample in samples.get("ask_image", []):
        for question, answer in zip(sample.truth["questions"], sample.truth["answers"], strict=True):
            by_template[claim_template(question)].append(answer)
    total = sum(len(v) for v in by_template.values())
    if total:
        chance["ask_image/questions"] = sum(majority_share(v) * len(v) for v in by_template.values()) / total
    return chance


# --- running a model -------------------------------------------------------------------------
@torch.no_grad()
def greedy_answers(
    model: Any, processor: Any, samples: Sequence[PretrainSample], *, blank: bool, batch_size: int,
    max_new_tokens: int, budget: Mapping[str, int],
) -> list[str]:
    """Greedy decodes of the samples' prompts (images blanked when `blank`)."""
    collator = PretrainCollator(processor, mode="generate", blank_images=blank, **budget)
    device = next(model.parameters()).device
    texts: list[str] = []
    for start in range(0, len(samples), batch_size):
        batch = collator(samples[start : start + batch_size])
        inputs = {k: v.to(device) for k, v in model_inputs(batch).items()}
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1] :]
        texts += processor.tokenizer.batch_decode(new, skip_special_tokens=True)
    return texts


def score_outputs(task: str, texts: Sequence[str], samples: Sequence[PretrainSample]) -> dict[str, float]:
    """Accuracy per field of one task's outputs."""
    hits: dict[str, list[bool]] = defaultdict(list)
    per_type: dict[str, list[bool]] = defaultdict(list)
    for text, sample in zip(texts, samples, strict=True):
        if task == "describe":
            for name, values in score_description(text, sample.truth).items():
                hits[name] += values
        elif task == "change":
            scored = score_change(text, sample.truth)
            for name, value in scored.items():
                hits[name].append(value)
            per_type[str(sample.truth["task_type"])].append(scored["change"])
        elif task == "ask_image":
            hits["questions"] += score_answers(text, sample.truth)
        else:
            hits["claims"] += score_verdicts(text, sample.truth)
    result = {f"{task}/{name}": float(np.mean(values)) for name, values in hits.items() if values}
    result |= {f"{task}/by_type/{name}": float(np.mean(v)) for name, v in sorted(per_type.items())}
    return result


def perception_report(
    model: Any, processor: Any, *, count: int = 500, seed: int = 0, mix: TaskMix | None = None,
    batch_size: int = 50, budget: Mapping[str, int] | None = None, tasks: Sequence[str] = TASKS,
) -> dict[str, Any]:
    """{"images": {field: acc}, "blank": {field: acc}, "chance": {field: acc}, "count": n} on held-out samples."""
    mix = mix or TaskMix()
    budget = dict(budget or {"max_pixels": mix.image_size**2, "min_pixels": 1024, "max_length": 1024})
    was_training = model.training
    model.eval()
    samples = {task: heldout_samples(task, count, seed, mix) for task in tasks}
    report: dict[str, Any] = {"count": count, "seed": seed, "stream": HELDOUT_STREAM}
    for condition, blank in (("images", False), ("blank", True)):
        scores: dict[str, float] = {}
        for task, task_samples in samples.items():
            max_new = 96 if task in ("describe", "change") else 24
            texts = greedy_answers(
                model, processor, task_samples, blank=blank, batch_size=batch_size, max_new_tokens=max_new, budget=budget
            )
            scores |= score_outputs(task, texts, task_samples)
        report[condition] = scores
    report["chance"] = chance_levels(samples)
    model.train(was_training)
    return report


ROWS: tuple[tuple[str, str], ...] = (
    ("object size", "describe/size"),
    ("object colour", "describe/color"),
    ("object shape", "describe/kind"),
    ("object cell", "describe/cell"),
    ("whole object", "describe/object"),
    ("background colour", "describe/background_color"),
    ("background texture", "describe/background_texture"),
    ("global look", "describe/look"),
    ("edit: target fact", "change/target"),
    ("edit: others fact", "change/others"),
    ("edit: quality fact", "change/quality"),
    ("edit: change named (target + others)", "change/change"),
    ("claims about an edit", "verify_edit/claims"),
    ("claims about an image", "verify_image/claims"),
    ("questions about an image", "ask_image/questions"),
)


def report_table(report: Mapping[str, Any]) -> str:
    """Markdown table: accuracy with images, with blank images, and chance, per field and change type."""
    lines = ["| field | images | blank images | chance |", "|---|---|---|---|"]
    images, blank, chance = report["images"], report["blank"], report["chance"]
    rows = list(ROWS) + [
        (f"change named: {key.rsplit('/', 1)[-1]}", key) for key in sorted(images) if "/by_type/" in key
    ]
    for label, key in rows:
        if key not in images:
            continue
        level = chance.get(key)
        lines.append(
            f"| {label} | {images[key]:.3f} | {blank.get(key, float('nan')):.3f} | "
            f"{'' if level is None else f'{level:.3f}'} |"
        )
    return "\n".join(lines)
