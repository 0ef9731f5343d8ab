"""Vision-language pretraining tasks rendered from the synthetic world, one seeded sample at a time.

Three task families, each a (images, prompt, answer) triple supervised with next-token CE on
the answer:

- `describe`: one image -> every object, the background and the global look (`describe.py`).
- `change`: source + edited image + instruction -> what the edit did, in the benchmark's own
  fact language (`target`, `others`, `quality` facts from the benchmark's editor), including
  edits that did nothing.
- `verify_edit` / `verify_image`: one or a few claims -> "true" / "false" each. Edit claims are
  the benchmark's critique claims (specific facts and vague verdicts) about one of two twin
  edits of one instruction, chosen so every claim text is true of one twin and false of the
  other and the labels are balanced; image claims name an object, the background or the look,
  true or with one attribute swapped.

The world is the benchmark's (`ie_eval.data.synth`), drawn from seed streams of its own
(`TRAIN_STREAM`, `HELDOUT_STREAM`), never the benchmark's `SOURCE_STREAM`, so no benchmark
scene is ever trained on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from ie_eval.data.pretrain.describe import (
    CLEAN_LOOK,
    LOOKS,
    OBJECT_SIZES,
    apply_look,
    describe_scene,
    object_phrase,
    sample_world_scene,
)
from ie_eval.data.prompts import ask_messages, change_messages, describe_messages, verify_messages
from ie_eval.data.synth.benchmark import edit_twins, stream_rng
from ie_eval.data.synth.critiques import VAGUE_TEXT, Claim
from ie_eval.data.synth.editor import EditOutcome, apply_edit
from ie_eval.data.synth.facts import CLEAN, FACT_KEYS, UNCHANGED, Fact
from ie_eval.data.synth.global_edits import source_image
from ie_eval.data.synth.instructions import (
    PLACES,
    Instruction,
    applicable_failures,
    feasible_tasks,
    sample_instruction,
)
from ie_eval.data.synth.scenes import BACKGROUND_COLORS, CELLS, OBJECT_COLORS, SHAPES, Scene, render_scene

TASKS: tuple[str, ...] = ("describe", "change", "verify_edit", "verify_image", "ask_image")
# Seed streams of the pretraining world; the benchmark uses streams 0 (sources) and 1 (annotators).
TRAIN_STREAM, HELDOUT_STREAM = 16, 17
# Each task's held-out samples come from their own block of indices, so the sets never overlap.
HELDOUT_TASK_OFFSET = 1_000_000
NO_OP_FACT = Fact("nothing in the image was edited", False)
TRUE_WORD, FALSE_WORD = "true", "false"


@dataclass(frozen=True)
class TaskMix:
    """Sampling weights of the task families, the image size and the shape of verification samples."""

    describe: float = 1.0
    change: float = 1.0
    verify_edit: float = 1.0
    verify_image: float = 0.5
    ask_image: float = 0.0
    image_size: int = 128
    max_claims: int = 3  # a verification sample asks about 1..max_claims claims at once
    no_op_probability: float = 0.05  # share of `change` samples whose edit did nothing
    look_probability: float = 0.5  # share of `describe` images with a global look applied
    # Single-image scenes (describe, verify_image, ask_image): object count and sizes. A curriculum
    # starts with few, large objects: a small shape covers ~3% of the image, and a readout that
    # averages the image tokens (as attention does at init) cannot see it among the background.
    max_objects: int = 4
    object_sizes: tuple[str, ...] = OBJECT_SIZES

    def weights(self) -> np.ndarray:
        values = np.asarray(
            [self.describe, self.change, self.verify_edit, self.verify_image, self.ask_image], dtype=np.float64
        )
        if (values < 0).any() or values.sum() <= 0:
            raise ValueError(f"task weights must be >= 0 with a positive sum, got {dict(zip(TASKS, values, strict=True))}")
        return values / values.sum()


@dataclass(frozen=True)
class PretrainSample:
    """One pretraining example: images (RGB uint8), chat messages, the supervised answer and its truth."""

    sample_id: str
    task: str
    images: tuple[np.ndarray, ...]
    messages: list[dict]
    answer: str
    truth: Mapping[str, object] = field(default_factory=dict)


def make_sample(seed: int, stream: int, index: int, mix: TaskMix, task: str | None = None) -> PretrainSample:
    """Sample `index` of (seed, stream): the same arguments always give the same sample."""
    rng = stream_rng(seed, stream, index)
    chosen = task or TASKS[int(rng.choice(len(TASKS), p=mix.weights()))]
    builders = {
        "describe": describe_sample,
        "change": change_sample,
        "verify_edit": verify_edit_sample,
        "verify_image": verify_image_sample,
        "ask_image": ask_image_sample,
    }
    if chosen not in builders:
        raise ValueError(f"unknown pretraining task {chosen!r}; choose one of {TASKS}")
    sample = builders[chosen](rng, mix)
    return replace(sample, sample_id=f"pretrain-s{stream}-{seed}-{index}")


def heldout_samples(task: str, count: int, seed: int, mix: TaskMix) -> list[PretrainSample]:
    """`count` held-out samples of one task (validation and the perception report share them)."""
    if task not in TASKS:
        raise ValueError(f"unknown pretraining task {task!r}; choose one of {TASKS}")
    start = HELDOUT_TASK_OFFSET * (1 + TASKS.index(task))
    return [make_sample(seed, HELDOUT_STREAM, start + i, mix, task=task) for i in range(count)]


def world_scene(rng: np.random.Generator, mix: TaskMix) -> Scene:
    return sample_world_scene(rng, mix.max_objects, sizes=tuple(mix.object_sizes))


def describe_sample(rng: np.random.Generator, mix: TaskMix) -> PretrainSample:
    scene, look, image = looked_scene(rng, mix)
    answer = describe_scene(scene, look)
    return PretrainSample("", "describe", (image,), describe_messages(), answer, {"scene": scene, "look": look})


def edit_instruction(rng: np.random.Generator) -> tuple[Scene, Instruction]:
    """A benchmark source scene and one instruction for it (any feasible task type)."""
    from ie_eval.data.synth.scenes import sample_scene

    scene = sample_scene(rng)
    tasks = feasible_tasks(scene)
    instruction = sample_instruction(tasks[int(rng.integers(len(tasks)))], scene, rng)
    return scene, instruction


def change_answer(facts: Mapping[str, Fact]) -> str:
    return " ".join(f"{key}: {facts[key].text}." for key in FACT_KEYS)


def change_sample(rng: np.random.Generator, mix: TaskMix) -> PretrainSample:
    scene, instruction = edit_instruction(rng)
    source = source_image(scene, instruction, mix.image_size)
    if rng.random() < mix.no_op_probability:
        edited, facts, mode = source, {"target": NO_OP_FACT, "others": UNCHANGED, "quality": CLEAN}, "no_op"
    else:
        modes = applicable_failures(instruction, scene)
        mode = modes[int(rng.integers(len(modes)))]
        outcome = apply_edit(scene, instruction, mode, mix.image_size, rng)
        edited, facts = outcome.image, dict(outcome.facts)
    truth = {"task_type": instruction.task_type, "failure_mode": mode, "facts": facts}
    return PretrainSample(
        "", "change", (source, edited), change_messages(instruction.text), change_answer(facts), truth
    )


def edit_claims(outcomes: list[EditOutcome]) -> list[Claim]:
    """Every specific fact of either twin, plus the vague verdicts on which the twins disagree."""
    claims = {
        (key, outcome.facts[key].text): Claim(key, outcome.facts[key].text, outcome.facts[key].ok)
        for outcome in outcomes
        for key in FACT_KEYS
    }
    for key in FACT_KEYS:
        if outcomes[0].facts[key].ok != outcomes[1].facts[key].ok:
            for ok in (True, False):
                claims[(key, VAGUE_TEXT[(key, ok)])] = Claim(key, VAGUE_TEXT[(key, ok)], ok, vague=True)
    return list(claims.values())


def balanced_pick(
    candidates: list[tuple[str, bool]], count: int, rng: np.random.Generator
) -> list[tuple[str, bool]]:
    """`count` distinct (text, label) candidates, as close to half true as the pool allows."""
    true = [c for c in candidates if c[1]]
    false = [c for c in candidates if not c[1]]
    picked: list[tuple[str, bool]] = []
    for _ in range(count):
        want_true = rng.random() < 0.5
        pool = true if (want_true and true) or not false else false
        if not pool:
            break
        picked.append(pool.pop(int(rng.integers(len(pool)))))
    return picked


def verify_answer(labels: list[bool]) -> str:
    words = [TRUE_WORD if label else FALSE_WORD for label in labels]
    if len(words) == 1:
        return words[0]
    return "; ".join(f"{i + 1} {word}" for i, word in enumerate(words))


def verify_edit_sample(rng: np.random.Generator, mix: TaskMix) -> PretrainSample:
    scene, instruction = edit_instruction(rng)
    outcomes = edit_twins(scene, instruction, mix.image_size, rng)
    shown = int(rng.integers(2))
    facts = outcomes[shown].facts
    candidates = [(c.text, c.holds(facts)) for c in edit_claims(outcomes)]
    picked = balanced_pick(candidates, int(rng.integers(1, mix.max_claims + 1)), rng)
    source = source_image(scene, instruction, mix.image_size)
    texts, labels = [t for t, _ in picked], [label for _, label in picked]
    truth = {
        "task_type": instruction.task_type,
        "failure_mode": outcomes[shown].failure_mode,
        "claims": texts,
        "labels": labels,
    }
    messages = verify_messages(texts, instruction.text)
    return PretrainSample("", "verify_edit", (source, outcomes[shown].image), messages, verify_answer(labels), truth)


def image_claims(scene: Scene, look: str, rng: np.random.Generator) -> list[tuple[str, bool]]:
    """True statements about one image, each with a false twin that swaps one attribute."""
    claims: list[tuple[str, bool]] = []
    used_cells = {o.cell for o in scene.objects}
    for obj in scene.objects:
        claims.append((f"there is a {object_phrase(obj)}", True))
        attribute = ("color", "size", "kind", "cell")[int(rng.integers(4))]
        options = {
            "color": [c for c in OBJECT_COLORS if c != obj.color],
            "size": [s for s in OBJECT_SIZES if s != obj.size],
            "kind": [k for k in SHAPES if k not in scene.kinds()],
            "cell": [c for c in CELLS if c not in used_cells],
        }[attribute]
        if options:
            wrong = replace(obj, **{attribute: options[int(rng.integers(len(options)))]})
            claims.append((f"there is a {object_phrase(wrong)}", False))
    color = scene.background.color
    other = [c for c in BACKGROUND_COLORS if c != color]
    claims.append((f"the background is {color}", True))
    claims.append((f"the background is {other[int(rng.integers(len(other)))]}", False))
    wrong_look = [name for name in LOOKS if name != look]
    claims.append((f"the look is {look}", True))
    claims.append((f"the look is {wrong_look[int(rng.integers(len(wrong_look)))]}", False))
    return claims


def looked_scene(rng: np.random.Generator, mix: TaskMix) -> tuple[Scene, str, np.ndarray]:
    """A single-image world scene, its global look (clean, or one of LOOKS with `look_probability`)
    and the rendered image with that look applied."""
    scene = world_scene(rng, mix)
    look = CLEAN_LOOK
    if rng.random() < mix.look_probability:
        look = LOOKS[1 + int(rng.integers(len(LOOKS) - 1))]
    return scene, look, apply_look(render_scene(scene, mix.image_size), look, rng)


def verify_image_sample(rng: np.random.Generator, mix: TaskMix) -> PretrainSample:
    scene, look, image = looked_scene(rng, mix)
    picked = balanced_pick(image_claims(scene, look, rng), int(rng.integers(1, mix.max_claims + 1)), rng)
    texts, labels = [t for t, _ in picked], [label for _, label in picked]
    messages = verify_messages(texts, None)
    truth = {"claims": texts, "labels": labels, "scene": scene, "look": look}
    return PretrainSample("", "verify_image", (image,), messages, verify_answer(labels), truth)


def image_questions(scene: Scene, look: str, rng: np.random.Generator) -> list[tuple[str, str]]:
    """(question, answer) pairs that each look one thing up in the image by place, shape or colour."""
    by_cell = {o.cell: o for o in scene.objects}
    questions: list[tuple[str, str]] = []
    for cell in rng.permutation(list(CELLS))[:3]:
        obj = by_cell.get(str(cell))
        questions.append((f"what is {PLACES[str(cell)]}", f"a {obj.size} {obj.color} {obj.kind}" if obj else "nothing"))
    for obj in scene.objects:
        questions += [
            (f"what color is the {obj.kind}", obj.color),
            (f"where is the {obj.kind}", PLACES[obj.cell]),
            (f"how big is the {obj.kind}", obj.size),
            (f"what shape is the {obj.color} object", obj.kind),
        ]
    absent = [k for k in SHAPES if k not in scene.kinds()]
    if absent:
        kind = absent[int(rng.integers(len(absent)))]
        questions.append((f"what color is the {kind}", f"there is no {kind}"))
    questions += [("what color is the background", scene.background.color), ("what is the look of the image", look)]
    return questions


def ask_image_sample(rng: np.random.Generator, mix: TaskMix) -> PretrainSample:
    scene, look, image = looked_scene(rng, mix)
    pool = image_questions(scene, look, rng)
    count = min(len(pool), int(rng.integers(1, mix.max_claims + 1)))
    picked = [pool[int(i)] for i in rng.permutation(len(pool))[:count]]
    answer = picked[0][1] if count == 1 else "; ".join(f"{i + 1} {a}" for i, (_, a) in enumerate(picked))
    truth = {"questions": [q for q, _ in picked], "answers": [a for _, a in picked]}
    return PretrainSample("", "ask_image", (image,), ask_messages([q for q, _ in picked]), answer, truth)
