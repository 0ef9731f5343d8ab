"""The synthetic world in words: a scene graph and its global look as one description, and back.

A description lists every object (size, colour, shape, place) in reading order, then the
background (colour, texture) and the look (a global filter or degradation, or "clean"):

    objects: small purple triangle on the left; large green circle in the bottom right corner.
    background: pink checkered. look: clean.

Places and texture words are the benchmark's own (`PLACES`, `TEXTURE_WORDS`), so a model that
describes images speaks the language the benchmark's instructions, facts and critiques use.
`parse_description` inverts `describe_scene` for the perception report.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ie_eval.data.synth import filters
from ie_eval.data.synth.instructions import PLACES, TEXTURE_WORDS
from ie_eval.data.synth.scenes import (
    BACKGROUND_COLORS,
    CELLS,
    OBJECT_COLORS,
    SHAPES,
    SIZES,
    Scene,
    SceneObject,
)

OBJECT_SIZES: tuple[str, ...] = tuple(SIZES)
FAINT_ALPHA = 0.35  # the benchmark's ghost opacity (object_edits.GHOST_ALPHA)
CLEAN_LOOK = "clean"


def _look_filters() -> dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]]:
    """look name -> filter with a random strength in the range the benchmark's edits use."""
    return {
        "blurry": lambda im, r: filters.gaussian_blur(im, float(r.uniform(1.4, 3.2))),
        "noisy": lambda im, r: filters.add_noise(im, float(r.uniform(18.0, 36.0)), int(r.integers(2**31 - 1))),
        "hazy": lambda im, r: filters.add_haze(im, float(r.uniform(0.45, 0.65))),
        "dark": lambda im, r: filters.darken(im, float(r.uniform(0.22, 0.4))),
        "pixelated": lambda im, r: filters.pixelate(im, int(r.integers(5, 8))),
        "bright": lambda im, r: filters.brightness(im, float(r.uniform(1.35, 1.9))),
        "warm": lambda im, r: filters.color_temperature(im, float(r.uniform(0.7, 1.0))),
        "cool": lambda im, r: filters.color_temperature(im, -float(r.uniform(0.7, 1.0))),
        "sepia": lambda im, r: filters.sepia(im),
        "black and white": lambda im, r: filters.grayscale(im),
        "posterized": lambda im, r: filters.posterize(im),
        "blocky": lambda im, r: filters.jpeg_blocks(im, int(r.integers(6, 16))),
        "smudged": lambda im, r: filters.smudges(im, float(r.uniform(0.4, 1.0)), int(r.integers(2**31 - 1))),
    }


LOOK_FILTERS = _look_filters()
LOOKS: tuple[str, ...] = (CLEAN_LOOK, *LOOK_FILTERS)
_PLACE_TO_CELL = {phrase: cell for cell, phrase in PLACES.items()}
_WORD_TO_TEXTURE = {word: texture for texture, word in TEXTURE_WORDS.items()}


@dataclass(frozen=True)
class DescribedObject:
    """What a description says of one object; `faint` marks a see-through (ghost) object."""

    size: str
    color: str
    kind: str
    cell: str
    faint: bool = False


@dataclass(frozen=True)
class Description:
    """A parsed description: objects in order, background colour and texture, look."""

    objects: tuple[DescribedObject, ...]
    background_color: str | None
    background_texture: str | None
    look: str | None


def sample_world_scene(
    rng: np.random.Generator, max_objects: int = 4, faint_probability: float = 0.08,
    sizes: tuple[str, ...] = OBJECT_SIZES,
) -> Scene:
    """A benchmark-style scene whose objects take any of `sizes` (edits make tiny and large ones) and
    are sometimes faint, so descriptions cover what edited images show."""
    from ie_eval.data.synth.scenes import sample_scene

    unknown = sorted(set(sizes) - set(OBJECT_SIZES))
    if unknown or not sizes:
        raise ValueError(f"object sizes must be a non-empty subset of {OBJECT_SIZES}, got {sizes}")
    scene = sample_scene(rng, max_objects)
    objects = tuple(
        replace(
            obj,
            size=str(sizes[int(rng.integers(len(sizes)))]),
            alpha=FAINT_ALPHA if rng.random() < faint_probability else 1.0,
        )
        for obj in scene.objects
    )
    return replace(scene, objects=objects)


def reading_order(objects: tuple[SceneObject, ...] | tuple[DescribedObject, ...]) -> list:
    """Objects sorted top-to-bottom, left-to-right by cell (kind breaks ties, for counting edits)."""
    return sorted(objects, key=lambda o: (CELLS[o.cell][1], CELLS[o.cell][0], o.kind))


def object_phrase(obj: SceneObject) -> str:
    """"small purple triangle on the left" (with "faint" first for a see-through object)."""
    faint = "faint " if obj.alpha < 1.0 else ""
    return f"{faint}{obj.size} {obj.color} {obj.kind} {PLACES[obj.cell]}"


def describe_scene(scene: Scene, look: str = CLEAN_LOOK) -> str:
    """The description of a rendered scene (objects must use named colours, sizes and cells)."""
    for obj in scene.objects:
        if obj.rgb is not None or obj.center is not None or obj.radius_scale != 1.0:
            raise ValueError(f"describe_scene: {obj} has a free-form colour, centre or radius; only named values describe")
    if look not in LOOKS:
        raise ValueError(f"unknown look {look!r}; choose one of {LOOKS}")
    objects = "; ".join(object_phrase(o) for o in reading_order(scene.objects))
    texture = TEXTURE_WORDS[scene.background.texture]
    return f"objects: {objects}. background: {scene.background.color} {texture}. look: {look}."


def apply_look(image: np.ndarray, look: str, rng: np.random.Generator) -> np.ndarray:
    """`image` with the named look applied (a no-op for "clean")."""
    if look == CLEAN_LOOK:
        return image
    if look not in LOOK_FILTERS:
        raise ValueError(f"unknown look {look!r}; choose one of {LOOKS}")
    return LOOK_FILTERS[look](image, rng)


_SECTION = re.compile(r"objects:(?P<objects>.*?)\.\s*background:(?P<background>.*?)\.\s*look:(?P<look>.*?)\.?\s*$", re.S)
_COLOR_WORDS = sorted(OBJECT_COLORS, key=len, reverse=True)
_BACKGROUND_WORDS = sorted(BACKGROUND_COLORS, key=len, reverse=True)


def parse_object(phrase: str) -> DescribedObject | None:
    """"small purple triangle on the left" -> DescribedObject, or None when any part is unknown."""
    words = phrase.strip()
    faint = words.startswith("faint ")
    words = words.removeprefix("faint ")
    size, _, rest = words.partition(" ")
    color = next((c for c in _COLOR_WORDS if rest.startswith(c + " ")), None)
    if size not in SIZES or color is None:
        return None
    kind, _, place = rest[len(color) + 1 :].partition(" ")
    if kind not in SHAPES or place not in _PLACE_TO_CELL:
        return None
    return DescribedObject(size, color, kind, _PLACE_TO_CELL[place], faint)


def parse_description(text: str) -> Description:
    """Invert `describe_scene`; parts that do not parse come back as None (objects are skipped)."""
    match = _SECTION.search(text.strip())
    if match is None:
        return Description((), None, None, None)
    objects = tuple(o for o in (parse_object(p) for p in match["objects"].split(";")) if o is not None)
    background = match["background"].strip()
    color = next((c for c in _BACKGROUND_WORDS if background.startswith(c + " ")), None)
    texture = _WORD_TO_TEXTURE.get(background[len(color) + 1 :].strip()) if color else None
    look = match["look"].strip()
    return Description(objects, color, texture, look if look in LOOKS else None)
