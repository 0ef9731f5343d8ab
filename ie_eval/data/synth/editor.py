"""The procedural editor: one instruction, one failure mode -> edited image, facts and true MOS.

Failure modes (`instructions.FAILURE_MODES`):
    correct          the instruction, done right
    wrong_target     the edit lands on another object (or, for `add`, another place)
    wrong_attribute  the right object, the wrong colour / size / place / filter / restoration
    partial          the edit is half done (ghosts, muddy mixes, weak filters, leftover blur)
    collateral       a correct edit plus an unrequested change to an uninvolved object
    artifacts        a correct edit plus noise, blur, blocky compression or smudges

Ground truth follows from the construction via `TRUTH_TABLE`, e.g. wrong target -> low
alignment and preservation; collateral -> low preservation; artifacts -> quality falling
with severity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from ie_eval.data.synth import filters
from ie_eval.data.synth.facts import CLEAN, Fact, TaskEdit
from ie_eval.data.synth.global_edits import GLOBAL_EDITORS
from ie_eval.data.synth.instructions import Instruction, task_class
from ie_eval.data.synth.object_edits import OBJECT_EDITORS
from ie_eval.data.synth.scenes import BACKGROUND_COLORS, OBJECT_COLORS, Scene, render_scene

TASK_LEVEL_MODES: frozenset[str] = frozenset({"correct", "wrong_target", "wrong_attribute", "partial"})
ARTIFACT_FACTS: dict[str, Fact] = {
    "noise": Fact("there is visible grain noise", False),
    "blur": Fact("the image looks blurry", False),
    "blocky": Fact("there are blocky compression artifacts", False),
    "smudges": Fact("there are discolored smudges", False),
}
# An artifact that looks like the task's own degradation would blur the facts apart.
FORBIDDEN_ARTIFACTS: dict[str, frozenset[str]] = {
    "denoise": frozenset({"noise", "blur"}),
    "deblur": frozenset({"blur"}),
    "super_resolution": frozenset({"blocky", "blur"}),
}
# True (visual_quality, instruction_alignment, content_preservation) per (task class, mode).
# `artifacts` quality is replaced by ARTIFACT_QUALITY(severity).
TRUTH_TABLE: dict[tuple[str, str], tuple[float, float, float]] = {
    ("object", "correct"): (0.88, 0.90, 0.90),
    ("object", "wrong_target"): (0.84, 0.12, 0.35),
    ("object", "wrong_attribute"): (0.84, 0.35, 0.82),
    ("object", "partial"): (0.62, 0.50, 0.86),
    ("object", "collateral"): (0.84, 0.80, 0.35),
    ("object", "artifacts"): (0.00, 0.75, 0.62),
    ("scene", "correct"): (0.88, 0.90, 0.88),
    ("scene", "wrong_attribute"): (0.80, 0.22, 0.80),
    ("scene", "partial"): (0.85, 0.50, 0.88),
    ("scene", "collateral"): (0.84, 0.82, 0.40),
    ("scene", "artifacts"): (0.00, 0.75, 0.62),
    ("restore", "correct"): (0.90, 0.90, 0.88),
    ("restore", "wrong_attribute"): (0.40, 0.35, 0.72),
    ("restore", "partial"): (0.45, 0.50, 0.86),
    ("restore", "collateral"): (0.86, 0.82, 0.40),
    ("restore", "artifacts"): (0.00, 0.55, 0.62),
}
TRUTH_JITTER = 0.03


def artifact_quality(severity: float) -> float:
    """Visual quality of an artifact-laden edit: 0.58 at severity 0.4 down to 0.25 at 1.0."""
    return 0.80 - 0.55 * severity


@dataclass(frozen=True)
class EditOutcome:
    """An edited image with what is true of it: facts for critiques, MOS for the critic."""

    image: np.ndarray
    failure_mode: str
    facts: Mapping[str, Fact]
    truth_mos: tuple[float, float, float]
    details: Mapping[str, object]


def apply_edit(
    scene: Scene, instruction: Instruction, failure_mode: str, size: int, rng: np.random.Generator
) -> EditOutcome:
    """Edit `scene` as `instruction` asks, failing in `failure_mode`; the image is (size, size, 3)."""
    task = instruction.task_type
    editor = OBJECT_EDITORS.get(task) or GLOBAL_EDITORS.get(task)
    if editor is None:
        raise ValueError(f"no editor for task type '{task}'")
    task_mode = failure_mode if failure_mode in TASK_LEVEL_MODES else "correct"
    edit = editor(scene, instruction, task_mode, rng)
    if failure_mode == "collateral":
        image, others = apply_collateral(edit, task, size, rng)
    else:
        image, others = finish(edit, edit.scene, size), edit.others
    details: dict[str, object] = {}
    quality, severity = CLEAN, 0.0
    if failure_mode == "artifacts":
        image, quality, severity = apply_artifacts(image, task, rng)
        details["severity"] = round(severity, 4)
    facts = {"target": edit.target, "others": others, "quality": quality}
    truth = truth_mos(task, failure_mode, severity, rng)
    return EditOutcome(image, failure_mode, facts, truth, details)


def finish(edit: TaskEdit, scene: Scene, size: int) -> np.ndarray:
    """Render `scene` and apply the edit's pixel step (lighting, filter, restoration)."""
    image = render_scene(scene, size)
    return image if edit.post is None else edit.post(image)


def collateral_change(
    scene: Scene, involved: frozenset[int], variant: str, rng: np.random.Generator
) -> tuple[Scene, Fact]:
    """An unrequested change: an uninvolved object recoloured or gone, or the background recoloured."""
    if variant == "background":
        colors = [c for c in BACKGROUND_COLORS if c != scene.background.color]
        color = colors[int(rng.integers(len(colors)))]
        changed = replace(scene, background=replace(scene.background, color=color))
        return changed, Fact(f"the background also turned {color}", False)
    free = [i for i in range(len(scene.objects)) if i not in involved]
    index = free[int(rng.integers(len(free)))]
    victim = scene.objects[index]
    if variant == "vanish":
        return scene.without_object(index), Fact(f"the {victim.kind} has disappeared", False)
    colors = [c for c in OBJECT_COLORS if c not in {o.color for o in scene.objects}]
    color = colors[int(rng.integers(len(colors)))]
    recolored = scene.with_object(index, replace(victim, color=color, rgb=None))
    return recolored, Fact(f"the {victim.kind} also turned {color}", False)


def apply_collateral(
    edit: TaskEdit, task: str, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, Fact]:
    """The correct edit plus the first collateral change that stays visible after the edit's pixel step.

    (A recolour can vanish under a grayscale filter, so invisible candidates are skipped.)
    """
    baseline = finish(edit, edit.scene, size)
    has_free = any(i not in edit.involved for i in range(len(edit.scene.objects)))
    variants = [("recolor", "vanish")[int(i)] for i in rng.permutation(2)] if has_free else []
    if task != "background" or not variants:
        variants.append("background")
    for variant in variants:
        scene, fact = collateral_change(edit.scene, edit.involved, variant, rng)
        image = finish(edit, scene, size)
        if filters.visible_change(image, baseline):
            break
    return image, fact


def apply_artifacts(image: np.ndarray, task: str, rng: np.random.Generator) -> tuple[np.ndarray, Fact, float]:
    """Noise, blur, blocky compression or smudges at a random severity in [0.4, 1], whichever is
    visible first in random order (blur is invisible on a smooth background)."""
    kinds = [k for k in ARTIFACT_FACTS if k not in FORBIDDEN_ARTIFACTS.get(task, frozenset())]
    severity = float(rng.uniform(0.4, 1.0))
    seed = int(rng.integers(2**31 - 1))
    for index in rng.permutation(len(kinds)):
        kind = kinds[int(index)]
        if kind == "noise":
            damaged = filters.add_noise(image, 10.0 + 22.0 * severity, seed)
        elif kind == "blur":
            damaged = filters.gaussian_blur(image, 0.8 + 1.4 * severity)
        elif kind == "blocky":
            damaged = filters.jpeg_blocks(image, int(round(22 - 16 * severity)))
        else:
            damaged = filters.smudges(image, severity, seed)
        if filters.visible_change(damaged, image):
            break
    return damaged, ARTIFACT_FACTS[kind], severity


def truth_mos(
    task: str, failure_mode: str, severity: float, rng: np.random.Generator
) -> tuple[float, float, float]:
    """Construction truth in [0, 1] per MOS dim, with a little jitter so ties are rare."""
    key = (task_class(task), failure_mode)
    if key not in TRUTH_TABLE:
        raise ValueError(f"failure mode '{failure_mode}' is not defined for task '{task}' ({key[0]} task)")
    quality, alignment, preservation = TRUTH_TABLE[key]
    if failure_mode == "artifacts":
        quality = artifact_quality(severity)
    jitter = rng.normal(0.0, TRUTH_JITTER, 3)
    values = np.clip(np.asarray([quality, alignment, preservation]) + jitter, 0.02, 0.98)
    return (round(float(values[0]), 4), round(float(values[1]), 4), round(float(values[2]), 4))


def check_distinguishable(first: EditOutcome, second: EditOutcome) -> list[str]:
    """Fact keys on which two edits of one instruction differ; raises if none (a generator bug)."""
    keys = [k for k in first.facts if first.facts[k].text != second.facts[k].text]
    if not keys:
        raise ValueError(
            f"edits '{first.failure_mode}' and '{second.failure_mode}' have identical facts {dict(first.facts)}"
        )
    return keys
