"""Editors for scene-wide tasks (background, lighting, style) and low-level restore tasks.

Restore tasks are the mirror image of the others: the *source* is a degraded render
(`degrade`), a correct edit is the clean render, and failures are half-undone degradations or
the wrong kind of processing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np

from ie_eval.data.synth import filters
from ie_eval.data.synth.facts import Fact, TaskEdit
from ie_eval.data.synth.instructions import (
    LIGHTING_OPPOSITE,
    RESTORE_TASKS,
    STYLE_FILTERS,
    TEXTURE_WORDS,
    Instruction,
    with_article,
)
from ie_eval.data.synth.scenes import BACKGROUND_COLORS, Scene, render_scene

Image = np.ndarray  # RGB uint8 (H, W, 3)

STYLE_LOOKS: dict[str, tuple[Callable[[Image], Image], str]] = {
    "sepia": (filters.sepia, "the image has a brown sepia tone"),
    "grayscale": (filters.grayscale, "the image is now black and white"),
    "posterize": (filters.posterize, "the colors are flattened into posterized bands"),
}
RESTORED: dict[str, str] = {
    "deblur": "the image is now sharp",
    "denoise": "the noise is gone",
    "dehaze": "the haze is cleared",
    "low_light": "the image is well lit now",
    "super_resolution": "fine detail is restored",
}
HALF_RESTORED: dict[str, str] = {
    "deblur": "the image is still somewhat blurry",
    "denoise": "some noise remains",
    "dehaze": "a light haze remains",
    "low_light": "the image is still rather dark",
    "super_resolution": "the image still looks pixelated",
}
PARTIAL_RESTORE = 0.6  # share of the degradation a partial restore leaves behind
MISPROCESSED: dict[str, str] = {
    "deblur": "the image is over-sharpened with halos",
    "denoise": "the noise is gone but the image is smeared",
    "dehaze": "the colors are harsh and over-contrasted",
    "low_light": "the image is overexposed and washed out",
    "super_resolution": "the image is smooth but still lacks detail",
}


def lighting(image: Image, direction: str, strength: float) -> Image:
    """Global relighting; strength 1 is the full requested change."""
    if direction == "brighter":
        return filters.brightness(image, 1.0 + 0.45 * strength)
    if direction == "darker":
        return filters.brightness(image, 1.0 - 0.45 * strength)
    if direction == "warmer":
        return filters.color_temperature(image, strength)
    if direction == "cooler":
        return filters.color_temperature(image, -strength)
    raise ValueError(f"unknown lighting direction '{direction}'; choose one of {tuple(LIGHTING_OPPOSITE)}")


def degrade(image: Image, task: str, params: Mapping[str, object], strength: float = 1.0) -> Image:
    """The degradation a restore task's source suffers; strength < 1 is a half-undone restore."""
    if task == "deblur":
        return filters.gaussian_blur(image, float(params["radius"]) * strength)
    if task == "denoise":
        return filters.add_noise(image, float(params["sigma"]) * strength, int(params["noise_seed"]))
    if task == "dehaze":
        return filters.add_haze(image, float(params["strength"]) * strength)
    if task == "low_light":
        return filters.darken(image, 1.0 - strength * (1.0 - float(params["exposure"])))
    if task == "super_resolution":
        factor = max(2, int(round(int(params["factor"]) * strength)))
        return filters.pixelate(image, factor)
    raise ValueError(f"'{task}' is not a restore task; restore tasks are {RESTORE_TASKS}")


def misprocess(image: Image, task: str, params: Mapping[str, object]) -> Image:
    """The wrong restoration: the clean `image` processed the way a confused editor would."""
    if task == "deblur":
        return filters.oversharpen(degrade(image, task, params, 0.6))
    if task == "denoise":
        return filters.gaussian_blur(image, 2.2)
    if task == "dehaze":
        return filters.scale_contrast(image, 1.9)
    if task == "low_light":
        return filters.brightness(image, 1.9)
    if task == "super_resolution":
        return filters.smooth_upsample(image, int(params["factor"]))
    raise ValueError(f"'{task}' is not a restore task; restore tasks are {RESTORE_TASKS}")


def edit_background(scene: Scene, instr: Instruction, mode: str, rng: np.random.Generator) -> TaskEdit:
    color, texture = str(instr.params["color"]), str(instr.params["texture"])
    if mode == "wrong_attribute":
        options = [c for c in BACKGROUND_COLORS if c not in (color, scene.background.color)]
        color = options[int(rng.integers(len(options)))]
    new_scene = replace(scene, background=replace(scene.background, color=color, texture=texture))
    if mode in ("correct", "wrong_attribute"):
        fact = Fact(
            f"the background is now {with_article(f'{color} {TEXTURE_WORDS[texture]}')} pattern",
            mode == "correct",
        )
        return TaskEdit(new_scene, fact)
    if mode == "partial":

        def half_background(image: Image) -> Image:
            return filters.blend(render_scene(scene, image.shape[0]), image, 0.5)

        fact = Fact("the background only partly changed, blending old and new", False)
        return TaskEdit(new_scene, fact, post=half_background)
    raise ValueError(f"task 'background' has no task-level mode '{mode}'")


def edit_lighting(scene: Scene, instr: Instruction, mode: str, rng: np.random.Generator) -> TaskEdit:
    direction = str(instr.params["direction"])
    if mode == "correct":
        applied, strength, fact = direction, 1.0, Fact(f"the scene is noticeably {direction}", True)
    elif mode == "wrong_attribute":
        applied = LIGHTING_OPPOSITE[direction]
        strength, fact = 1.0, Fact(f"the scene got {applied} instead", False)
    elif mode == "partial":
        applied, strength, fact = direction, 0.25, Fact(f"the scene is only marginally {direction}", False)
    else:
        raise ValueError(f"task 'lighting' has no task-level mode '{mode}'")
    return TaskEdit(scene, fact, post=lambda image: lighting(image, applied, strength))


def edit_style(scene: Scene, instr: Instruction, mode: str, rng: np.random.Generator) -> TaskEdit:
    name = str(instr.params["filter"])
    if mode == "correct":
        look, text = STYLE_LOOKS[name]
        return TaskEdit(scene, Fact(text, True), post=look)
    if mode == "wrong_attribute":
        others = [f for f in STYLE_FILTERS if f != name]
        look, text = STYLE_LOOKS[others[int(rng.integers(len(others)))]]
        return TaskEdit(scene, Fact(text, False), post=look)
    if mode == "partial":
        look = STYLE_LOOKS[name][0]
        fact = Fact(f"the {name} effect is only faint", False)
        return TaskEdit(scene, fact, post=lambda image: filters.blend(image, look(image), 0.3))
    raise ValueError(f"task 'style' has no task-level mode '{mode}'")


def edit_restore(scene: Scene, instr: Instruction, mode: str, rng: np.random.Generator) -> TaskEdit:
    task, params = instr.task_type, instr.params
    if mode == "correct":
        return TaskEdit(scene, Fact(RESTORED[task], True))
    if mode == "partial":
        return TaskEdit(
            scene,
            Fact(HALF_RESTORED[task], False),
            post=lambda image: degrade(image, task, params, PARTIAL_RESTORE),
        )
    if mode == "wrong_attribute":
        return TaskEdit(
            scene, Fact(MISPROCESSED[task], False), post=lambda image: misprocess(image, task, params)
        )
    raise ValueError(f"task '{task}' has no task-level mode '{mode}'")


def source_image(scene: Scene, instr: Instruction, size: int) -> Image:
    """The image the instruction is given with: the render, degraded for restore tasks."""
    image = render_scene(scene, size)
    if instr.task_type in RESTORE_TASKS:
        return degrade(image, instr.task_type, instr.params)
    return image


GLOBAL_EDITORS: dict[str, Callable[[Scene, Instruction, str, np.random.Generator], TaskEdit]] = {
    "background": edit_background,
    "lighting": edit_lighting,
    "style": edit_style,
    **{task: edit_restore for task in RESTORE_TASKS},
}
