"""The edit taxonomy (paper section 3.1): task types, their failure modes, and instruction text.

Object tasks name one object of the scene (kinds are unique per scene, so "the star" is
unambiguous); scene tasks change the whole image; restore tasks are the low-level ones, whose
*source* is a degraded render and whose instruction asks to undo the degradation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ie_eval.data.synth.scenes import BACKGROUND_COLORS, OBJECT_COLORS, SHAPES, TEXTURES, Scene

OBJECT_TASKS: tuple[str, ...] = ("add", "remove", "replace", "color", "size", "position", "counting")
SCENE_TASKS: tuple[str, ...] = ("background", "lighting", "style")
RESTORE_TASKS: tuple[str, ...] = ("deblur", "denoise", "dehaze", "low_light", "super_resolution")
TASK_TYPES: tuple[str, ...] = OBJECT_TASKS + SCENE_TASKS + RESTORE_TASKS

FAILURE_MODES: tuple[str, ...] = (
    "correct",
    "wrong_target",
    "wrong_attribute",
    "partial",
    "collateral",
    "artifacts",
)
# Tasks whose wrong-target failure edits a different object, so the scene needs two of them.
NEEDS_SECOND_OBJECT: frozenset[str] = frozenset(
    {"remove", "replace", "color", "size", "position", "counting"}
)

PLACES: dict[str, str] = {
    "top left": "in the top left corner",
    "top": "at the top",
    "top right": "in the top right corner",
    "left": "on the left",
    "center": "in the center",
    "right": "on the right",
    "bottom left": "in the bottom left corner",
    "bottom": "at the bottom",
    "bottom right": "in the bottom right corner",
}
NUMBER_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
TEXTURE_WORDS: dict[str, str] = {
    "noise": "mottled",
    "gradient": "gradient",
    "stripes": "striped",
    "checker": "checkered",
}
LIGHTING_OPPOSITE: dict[str, str] = {
    "brighter": "darker",
    "darker": "brighter",
    "warmer": "cooler",
    "cooler": "warmer",
}
STYLE_FILTERS: tuple[str, ...] = ("sepia", "grayscale", "posterize")


@dataclass(frozen=True)
class Instruction:
    """What to edit: `target` is the index of the named object (None for scene-wide tasks)."""

    task_type: str
    text: str
    target: int | None = None
    params: Mapping[str, object] = field(default_factory=dict)


def task_class(task_type: str) -> str:
    """'object', 'scene' or 'restore': the three families share failure semantics and truth."""
    if task_type in OBJECT_TASKS:
        return "object"
    if task_type in SCENE_TASKS:
        return "scene"
    if task_type in RESTORE_TASKS:
        return "restore"
    raise ValueError(f"unknown task type '{task_type}'; choose one of {TASK_TYPES}")


def with_article(phrase: str) -> str:
    """`phrase` with its indefinite article: "a red star", "an orange circle"."""
    return f"an {phrase}" if phrase[:1].lower() in "aeiou" else f"a {phrase}"


def plural(kind: str) -> str:
    return f"{kind}es" if kind.endswith("x") else f"{kind}s"


def feasible_tasks(scene: Scene) -> list[str]:
    """Task types this scene supports (add/replace need a shape kind not yet in the scene)."""
    missing_kind = len(set(SHAPES) - set(scene.kinds())) > 0
    tasks = []
    for task in TASK_TYPES:
        if task in ("add", "replace") and not missing_kind:
            continue
        if task in ("add", "position", "counting") and len(scene.empty_cells()) < 3:
            continue
        tasks.append(task)
    return tasks


def applicable_failures(instruction: Instruction, scene: Scene) -> tuple[str, ...]:
    """Failure modes that make sense for this instruction on this scene."""
    task = instruction.task_type
    modes = ["correct", "wrong_attribute", "partial", "collateral", "artifacts"]
    if task == "remove":
        modes.remove("wrong_attribute")
    if task == "add" or (task in NEEDS_SECOND_OBJECT and len(scene.objects) >= 2):
        modes.insert(1, "wrong_target")
    return tuple(modes)


def _pick(rng: np.random.Generator, options: list[str] | tuple[str, ...]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _pick_other(rng: np.random.Generator, options: list[str] | tuple[str, ...], exclude: set[str]) -> str:
    return _pick(rng, [o for o in options if o not in exclude])


def sample_instruction(task_type: str, scene: Scene, rng: np.random.Generator) -> Instruction:
    """A concrete instruction of `task_type` for `scene`, with one of a few phrasings."""
    if task_type in OBJECT_TASKS:
        return _object_instruction(task_type, scene, rng)
    if task_type in SCENE_TASKS:
        return _scene_instruction(task_type, scene, rng)
    return _restore_instruction(task_type, rng)


def _object_instruction(task: str, scene: Scene, rng: np.random.Generator) -> Instruction:
    target = int(rng.integers(len(scene.objects)))
    obj = scene.objects[target]
    k = obj.kind
    if task == "add":
        kind = _pick_other(rng, SHAPES, set(scene.kinds()))
        color = _pick_other(rng, list(OBJECT_COLORS), {o.color for o in scene.objects})
        cell = _pick(rng, scene.empty_cells())
        text = _pick(
            rng,
            [
                f"Add {with_article(f'{color} {kind}')} {PLACES[cell]}.",
                f"Put {with_article(f'{color} {kind}')} {PLACES[cell]}.",
            ],
        )
        return Instruction(task, text, None, {"kind": kind, "color": color, "cell": cell})
    if task == "remove":
        text = _pick(rng, [f"Remove the {k}.", f"Delete the {k} from the picture.", f"Erase the {k}."])
        return Instruction(task, text, target)
    if task == "replace":
        kind = _pick_other(rng, SHAPES, set(scene.kinds()))
        color = _pick_other(rng, list(OBJECT_COLORS), {obj.color})
        text = _pick(
            rng,
            [
                f"Replace the {k} with {with_article(f'{color} {kind}')}.",
                f"Turn the {k} into {with_article(f'{color} {kind}')}.",
            ],
        )
        return Instruction(task, text, target, {"kind": kind, "color": color})
    if task == "color":
        # A colour no object has yet, so a wrong-target recolour is always visible.
        color = _pick_other(rng, list(OBJECT_COLORS), {o.color for o in scene.objects})
        text = _pick(
            rng,
            [f"Change the color of the {k} to {color}.", f"Make the {k} {color}.", f"Paint the {k} {color}."],
        )
        return Instruction(task, text, target, {"color": color})
    if task == "size":
        direction = "larger" if obj.size == "small" else _pick(rng, ["larger", "smaller"])
        verb = {"larger": ["larger", "bigger"], "smaller": ["smaller", "a bit smaller"]}[direction]
        text = f"Make the {k} {_pick(rng, verb)}."
        return Instruction(task, text, target, {"direction": direction})
    if task == "position":
        cell = _pick(rng, scene.empty_cells())
        text = _pick(rng, [f"Move the {k} {PLACES[cell]}.", f"Shift the {k} so it sits {PLACES[cell]}."])
        return Instruction(task, text, target, {"cell": cell})
    if task == "counting":
        n_add = int(rng.integers(1, 3))
        total = NUMBER_WORDS[n_add + 1]
        text = _pick(
            rng,
            [
                f"Add {NUMBER_WORDS[n_add]} more {plural(k) if n_add > 1 else k} so there are {total} {plural(k)}.",
                f"Make it {total} {plural(k)} in total.",
            ],
        )
        return Instruction(task, text, target, {"n_add": n_add})
    raise ValueError(f"'{task}' is not an object task; object tasks are {OBJECT_TASKS}")


def _scene_instruction(task: str, scene: Scene, rng: np.random.Generator) -> Instruction:
    if task == "background":
        color = _pick_other(rng, list(BACKGROUND_COLORS), {scene.background.color})
        texture = _pick(rng, TEXTURES)
        words = f"{color} {TEXTURE_WORDS[texture]}"
        text = _pick(
            rng,
            [
                f"Change the background to {with_article(words)} pattern.",
                f"Give the picture {with_article(words)} background.",
            ],
        )
        return Instruction(task, text, None, {"color": color, "texture": texture})
    if task == "lighting":
        direction = _pick(rng, list(LIGHTING_OPPOSITE))
        text = {
            "brighter": "Make the scene brighter.",
            "darker": "Make the lighting darker.",
            "warmer": "Give the scene warm, golden lighting.",
            "cooler": "Make the lighting cooler and bluish.",
        }[direction]
        return Instruction(task, text, None, {"direction": direction})
    if task == "style":
        name = _pick(rng, STYLE_FILTERS)
        text = {
            "sepia": "Apply a vintage sepia filter.",
            "grayscale": "Turn the picture black and white.",
            "posterize": "Posterize the image into flat bands of color.",
        }[name]
        return Instruction(task, text, None, {"filter": name})
    raise ValueError(f"'{task}' is not a scene task; scene tasks are {SCENE_TASKS}")


def _restore_instruction(task: str, rng: np.random.Generator) -> Instruction:
    """Restore instructions carry the degradation parameters their source was rendered with."""
    if task == "deblur":
        params = {"radius": round(float(rng.uniform(2.0, 3.2)), 3)}
        texts = ["Remove the blur and make the image sharp.", "Deblur this photo."]
    elif task == "denoise":
        params = {
            "sigma": round(float(rng.uniform(22.0, 36.0)), 3),
            "noise_seed": int(rng.integers(2**31 - 1)),
        }
        texts = ["Remove the noise from this image.", "Denoise the picture."]
    elif task == "dehaze":
        params = {"strength": round(float(rng.uniform(0.5, 0.65)), 3)}
        texts = ["Remove the haze.", "Clear up the hazy, washed-out look."]
    elif task == "low_light":
        params = {"exposure": round(float(rng.uniform(0.22, 0.35)), 3)}
        texts = ["Brighten this underexposed image.", "Enhance this low-light photo."]
    elif task == "super_resolution":
        params = {"factor": 6}
        texts = ["Increase the resolution and restore fine detail.", "Upscale this low-resolution image."]
    else:
        raise ValueError(f"'{task}' is not a restore task; restore tasks are {RESTORE_TASKS}")
    return Instruction(task, _pick(rng, texts), None, params)
