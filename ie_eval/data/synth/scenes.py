"""Source scenes: 1-4 simple objects on a textured background, as a scene graph and as pixels.

Edits change the scene graph and re-render it with the same background texture seed, so
everything an edit did not touch is pixel-identical to the source: that is what makes
content preservation known by construction. Objects are big and flat-coloured because the
tiny Qwen-VL models that read these images see 28-32 px per merged visual token.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

# Saturated object colours, far from the muted background palette.
OBJECT_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (30, 160, 60),
    "blue": (35, 80, 220),
    "yellow": (245, 210, 30),
    "purple": (140, 50, 190),
    "orange": (250, 130, 20),
    "black": (25, 25, 25),
}
BACKGROUND_COLORS: dict[str, tuple[int, int, int]] = {
    "beige": (222, 208, 182),
    "gray": (160, 160, 160),
    "sky blue": (172, 202, 230),
    "mint": (180, 222, 196),
    "lavender": (208, 195, 232),
    "pink": (236, 196, 206),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "hexagon")
TEXTURES: tuple[str, ...] = ("noise", "gradient", "stripes", "checker")
# Object radius as a fraction of the image side.
SIZES: dict[str, float] = {"tiny": 0.055, "small": 0.085, "medium": 0.125, "large": 0.17}
SOURCE_SIZES: tuple[str, ...] = ("small", "medium")
# 3x3 grid of named places: name -> (column, row).
CELLS: dict[str, tuple[int, int]] = {
    "top left": (0, 0),
    "top": (1, 0),
    "top right": (2, 0),
    "left": (0, 1),
    "center": (1, 1),
    "right": (2, 1),
    "bottom left": (0, 2),
    "bottom": (1, 2),
    "bottom right": (2, 2),
}
GRID_COORDS: tuple[float, float, float] = (0.18, 0.5, 0.82)
SUPERSAMPLE = 2  # masks are drawn at 2x and box-filtered down: cheap anti-aliasing


@dataclass(frozen=True)
class SceneObject:
    """One flat-coloured shape; `rgb`, `center`, `radius_scale`, `alpha` encode partial edits."""

    kind: str
    color: str
    size: str
    cell: str
    offset: tuple[float, float] = (0.0, 0.0)
    radius_scale: float = 1.0
    alpha: float = 1.0
    rgb: tuple[int, int, int] | None = None
    center: tuple[float, float] | None = None

    def fill_rgb(self) -> tuple[int, int, int]:
        return self.rgb if self.rgb is not None else OBJECT_COLORS[self.color]

    def center_xy(self) -> tuple[float, float]:
        """Centre in [0, 1] image units: an explicit centre wins over the named cell."""
        if self.center is not None:
            return self.center
        return cell_center(self.cell, self.offset)

    def radius(self) -> float:
        return SIZES[self.size] * self.radius_scale


@dataclass(frozen=True)
class Background:
    texture: str
    color: str
    texture_seed: int


@dataclass(frozen=True)
class Scene:
    """A background plus objects; object kinds are unique, so "the circle" is unambiguous."""

    background: Background
    objects: tuple[SceneObject, ...]

    def with_object(self, index: int, obj: SceneObject) -> Scene:
        objects = list(self.objects)
        objects[index] = obj
        return replace(self, objects=tuple(objects))

    def without_object(self, index: int) -> Scene:
        return replace(self, objects=tuple(o for i, o in enumerate(self.objects) if i != index))

    def plus_objects(self, *objs: SceneObject) -> Scene:
        return replace(self, objects=self.objects + tuple(objs))

    def empty_cells(self) -> list[str]:
        used = {o.cell for o in self.objects}
        return [c for c in CELLS if c not in used]

    def kinds(self) -> list[str]:
        return [o.kind for o in self.objects]


def cell_center(cell: str, offset: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
    column, row = CELLS[cell]
    return (GRID_COORDS[column] + offset[0], GRID_COORDS[row] + offset[1])


def sample_scene(rng: np.random.Generator, max_objects: int = 4) -> Scene:
    """1..max_objects objects with distinct kinds, colours and cells on a random background."""
    n_objects = int(rng.integers(1, max_objects + 1))
    kinds = rng.choice(SHAPES, n_objects, replace=False)
    colors = rng.choice(list(OBJECT_COLORS), n_objects, replace=False)
    cells = rng.choice(list(CELLS), n_objects, replace=False)
    sizes = rng.choice(SOURCE_SIZES, n_objects)
    offsets = rng.uniform(-0.025, 0.025, size=(n_objects, 2))
    objects = tuple(
        SceneObject(str(k), str(c), str(s), str(cell), (round(float(dx), 4), round(float(dy), 4)))
        for k, c, s, cell, (dx, dy) in zip(kinds, colors, sizes, cells, offsets, strict=True)
    )
    background = Background(
        texture=str(rng.choice(TEXTURES)),
        color=str(rng.choice(list(BACKGROUND_COLORS))),
        texture_seed=int(rng.integers(2**31 - 1)),
    )
    return Scene(background, objects)


def render_background(background: Background, size: int) -> np.ndarray:
    """Textured background (size, size, 3) float32 in 0..255, deterministic from its seed."""
    rng = np.random.default_rng(background.texture_seed)
    grid = np.arange(size, dtype=np.float32) / size
    xx, yy = grid[None, :], grid[:, None]  # broadcast to (size, size)
    angle = rng.uniform(0.0, np.pi)
    projection = xx * np.float32(np.cos(angle)) + yy * np.float32(np.sin(angle))
    if background.texture == "noise":
        coarse = rng.normal(0.0, 1.0, (6, 6)).astype(np.float32)
        smooth = np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.BILINEAR))
        shade = 12.0 * smooth + 4.0 * rng.standard_normal((size, size), dtype=np.float32)
    elif background.texture == "gradient":
        shade = 40.0 * (projection - projection.mean())
    elif background.texture == "stripes":
        period = rng.uniform(0.09, 0.15)
        shade = 13.0 * np.sign(np.sin(2 * np.pi * projection / np.float32(period)))
    elif background.texture == "checker":
        cells = 8
        shade = 11.0 * (((xx * cells).astype(int) + (yy * cells).astype(int)) % 2 * 2 - 1)
    else:
        raise ValueError(f"unknown background texture '{background.texture}'; choose one of {TEXTURES}")
    base = np.asarray(BACKGROUND_COLORS[background.color], dtype=np.float32)
    return np.clip(base + shade[..., None].astype(np.float32), 0, 255)


def _polygon(kind: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """Vertices of a shape of nominal radius r centred at (cx, cy), in pixels."""
    if kind == "square":
        h = 0.85 * r
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if kind == "diamond":
        return [(cx, cy - 1.1 * r), (cx + 0.85 * r, cy), (cx, cy + 1.1 * r), (cx - 0.85 * r, cy)]
    if kind == "triangle":
        return _regular(3, cx, cy + 0.2 * r, 1.15 * r)
    if kind == "hexagon":
        return _regular(6, cx, cy, r)
    if kind == "star":
        outer = _regular(5, cx, cy, 1.15 * r)
        inner = _regular(5, cx, cy, 0.5 * r, phase=np.pi / 5)
        return [p for pair in zip(outer, inner, strict=True) for p in pair]
    raise ValueError(f"unknown shape '{kind}'; choose one of {SHAPES}")


def _regular(n: int, cx: float, cy: float, r: float, phase: float = 0.0) -> list[tuple[float, float]]:
    angles = -np.pi / 2 + phase + 2 * np.pi * np.arange(n) / n
    return [(cx + r * float(np.cos(a)), cy + r * float(np.sin(a))) for a in angles]


def object_box(obj: SceneObject, size: int) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1), clipped to the image, that contains the whole object."""
    x, y = obj.center_xy()
    reach = 1.4 * obj.radius() * size + 2  # the triangle reaches 1.35 r below its centre
    x0, y0 = max(0, int(np.floor(x * size - reach))), max(0, int(np.floor(y * size - reach)))
    x1, y1 = min(size, int(np.ceil(x * size + reach))), min(size, int(np.ceil(y * size + reach)))
    return x0, y0, max(x0, x1), max(y0, y1)


def object_mask(obj: SceneObject, size: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """Coverage (y1-y0, x1-x0) float32 in [0, 1] of one object inside `box`, anti-aliased by supersampling."""
    x0, y0, x1, y1 = box
    canvas = Image.new("L", ((x1 - x0) * SUPERSAMPLE, (y1 - y0) * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(canvas)
    x, y = obj.center_xy()
    cx, cy = (x * size - x0) * SUPERSAMPLE, (y * size - y0) * SUPERSAMPLE
    r = obj.radius() * size * SUPERSAMPLE
    if obj.kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        draw.polygon(_polygon(obj.kind, cx, cy, r), fill=255)
    return np.asarray(canvas.resize((x1 - x0, y1 - y0), Image.BOX), dtype=np.float32) / 255.0


def render_scene(scene: Scene, size: int) -> np.ndarray:
    """The scene as an RGB uint8 array (size, size, 3); objects drawn in list order."""
    image = render_background(scene.background, size)
    for obj in scene.objects:
        x0, y0, x1, y1 = box = object_box(obj, size)
        if x1 <= x0 or y1 <= y0:
            continue
        coverage = (object_mask(obj, size, box) * obj.alpha)[..., None]
        patch = image[y0:y1, x0:x1]
        image[y0:y1, x0:x1] = (
            patch * (1.0 - coverage) + np.asarray(obj.fill_rgb(), dtype=np.float32) * coverage
        )
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
