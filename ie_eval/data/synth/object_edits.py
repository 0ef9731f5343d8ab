"""Editors for object tasks (add, remove, replace, color, size, position, counting).

Each editor takes the source scene, the instruction and one task-level mode (`correct`,
`wrong_target`, `wrong_attribute`, `partial`) and returns the edited scene graph with the
`target` / `others` facts the edit establishes. Collateral changes and artifacts are applied
on top of a correct edit by `editor.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ie_eval.data.synth.facts import Fact, TaskEdit
from ie_eval.data.synth.instructions import NUMBER_WORDS, PLACES, Instruction, plural, with_article
from ie_eval.data.synth.scenes import OBJECT_COLORS, SIZES, Scene, SceneObject

SIZE_ORDER: tuple[str, ...] = ("tiny", "small", "medium", "large")
GHOST_ALPHA = 0.35  # opacity of a half-done addition or removal


def _other_index(scene: Scene, target: int, rng: np.random.Generator) -> int:
    others = [i for i in range(len(scene.objects)) if i != target]
    if not others:
        raise ValueError(f"wrong_target needs a second object; scene has {len(scene.objects)}")
    return others[int(rng.integers(len(others)))]


def _other_choice(rng: np.random.Generator, options: list[str], exclude: set[str]) -> str:
    pool = [o for o in options if o not in exclude]
    return pool[int(rng.integers(len(pool)))]


def _unknown_mode(task: str, mode: str) -> ValueError:
    return ValueError(f"task '{task}' has no task-level mode '{mode}'")


def edit_add(scene: Scene, instr: Instruction, mode: str, rng: np.random.Generator) -> TaskEdit:
    kind, color, cell = str(instr.params["kind"]), str(instr.params["color"]), str(instr.params["cell"])
    if mode == "wrong_target":  # the right object in the wrong place
        cell = _other_choice(rng, scene.empty_cells(), {cell})
    elif mode == "wrong_attribute":
        color = _other_choice(rng, list(OBJECT_COLORS), {color} | {o.color for o in scene.objects})
    alpha = GHOST_ALPHA if mode == "partial" else 1.0
    new_scene = scene.plus_objects(SceneObject(kind, color, "medium", cell, alpha=alpha))
    if mode == "partial":
        text = f"only a faint, see-through {color} {kind} appears {PLACES[cell]}"
    else:
        text = f"{with_article(f'{color} {kind}')} was added {PLACES[cell]}"
    return TaskEdit(new_scene, Fact(text, mode == "correct"), involved=frozenset({len(scene.objects)}))


def edit_remove(scene: Scene, instr: Instruction, mode: str, rng: np.random.Generator) -> TaskEdit:
    target = int(instr.target)
    kind = scene.objects[target].kind
    if mode == "correct":
        return TaskEdit(scene.without_object(target), Fact(f"the {kind} is gone", True))
    if mode == "wrong_target":
        other = _other_index(scene, target, rng)
        new_scene = scene.without_object(other)
        others = Fact(f"the {scene.objects[other].kind} was removed instead", False)
        return TaskEdit(new_scene, Fact(f"the {kind} is still there", False), others)
    if mode == "partial":
        ghost = replace(scene.objects[target], alpha=GHOST_ALPHA)
        return TaskEdit(scene.with_object(target, ghost), Fact(f"a faded ghost of the {kind} remains", False))
    raise _unknown_mode("remove", mode)


def _replaced(obj: SceneObject, kind: str, color: str) -> SceneObject:
    return SceneObject(kind, color, max(obj.size, "medium", key=SIZE_ORDER.index), obj.cell, obj.offset)


def edit_replace(scene: Scene, instr: Instruction, mode: str, rng: np.random.Generator) -> TaskEdit:
    target = int(instr.target)
    old = scene.objects[target]
    kind, color = str(instr.params["kind"]), str(instr.params["color"])
    if mode == "correct":
        new_scene = scene.with_object(target, _replaced(old, kind, color))
        return TaskEdit(
            new_scene,
            Fact(f"the {old.kind} became {with_article(f'{color} {kind}')}", True),
            involved=frozenset({target}),
        )
    if mode == "wrong_target":
        other = _other_index(scene, target, rng)
        new_scene = scene.with_object(other, _replaced(scene.objects[other], kind, color))
        others = Fact(
            f"the {scene.objects[other].kind} became {with_article(f'{color} {kind}')} instead", False
        )
        return TaskEdit(new_scene, Fact(f"the {old.kind} is still there", False), others)
    if mode == "wrong_attribute":
        wrong = _other_choice(rng, list(OBJECT_COLORS), {color, old.color})
        new_scene = scene.with_object(target, _replaced(old, kind, wrong))
        return TaskEdit(new_scene, Fact(f"the {old.kind} became {with_article(f'{wrong} {kind}')}", False))
    if mode == "partial":  # old and new superimposed, neither fully there
        ghost_old = replace(old, alpha=0.6)
        ghost_new = replace(_replaced(old, kind, color), alpha=0.5)
        new_scene = scene.with_object(target, ghost_old).plus_objects(ghost_new)
        return TaskEdit(new_scene, Fact(f"the {old.kind} and a faint {color} {kind} overlap", False))
    raise _unknown_mode("replace", mode)


def edit_color(scene: Scene, instr: Instruction, mode: str, rng: np.random.Generator) -> TaskEdit:
    target = int(instr.target)
    old = scene.objects[target]
    color = str(instr.params["color"])
    if mode == "correct":
        new_scene = scene.with_object(target, replace(old, color=color))
        return TaskEdit(new_scene, Fact(f"the {old.kind} is now {color}", True), involved=frozenset({target}))
    if mode == "wrong_target":
        other = _other_index(scene, target, rng)
        new_scene = scene.with_object(other, replace(scene.objects[other], color=color))
        others = Fact(f"the {scene.objects[other].kind} turned {color} instead", False)
        return TaskEdit(new_scene, Fact(f"the {old.kind} is still {old.color}", False), others)
    if mode == "wrong_attribute":
        wrong = _other_choice(rng, list(OBJECT_COLORS), {color} | {o.color for o in scene.objects})
        new_scene = scene.with_object(target, replace(old, color=wrong))
        return TaskEdit(new_scene, Fact(f"the {old.kind} is now {wrong}", False))
    if mode == "partial":
        mix = tuple(
            int(round((a + b) / 2))
            for a, b in zip(OBJECT_COLORS[old.color], OBJECT_COLORS[color], strict=True)
        )
        new_scene = scene.with_object(target, replace(old, rgb=mix))
        return TaskEdit(new_scene, Fact(f"the {old.kind} is a muddy mix of {old.color} and {color}", False))
    raise _unknown_mode("color", mode)


def _resized(size: str, direction: str) -> str:
    """One step along SIZE_ORDER, clamped at both ends."""
    step = 1 if direction == "larger" else -1
    index = min(max(SIZE_ORDER.index(size) + step, 0), len(SIZE_ORDER) - 1)
    return SIZE_ORDER[index]


def edit_size(scene: Scene, instr: Instruction, mode: str, rng: np.random.Generator) -> TaskEdit:
    target = int(instr.target)
    old = scene.objects[target]
    direction = str(instr.params["direction"])
    opposite = "smaller" if direction == "larger" else "larger"
    if mode == "correct":
        new_scene = scene.with_object(target, replace(old, size=_resized(old.size, direction)))
        return TaskEdit(
            new_scene, Fact(f"the {old.kind} is clearly {direction} now", True), involved=frozenset({target})
        )
    if mode == "wrong_target":
        other = _other_index(scene, target, rng)
        moved = scene.objects[other]
        new_scene = scene.with_object(other, replace(moved, size=_resized(moved.size, direction)))
        others = Fact(f"the {moved.kind} got {direction} instead", False)
        return TaskEdit(new_scene, Fact(f"the {old.kind} kept its size", False), others)
    if mode == "wrong_attribute":
        new_scene = scene.with_object(target, replace(old, size=_resized(old.size, opposite)))
        return TaskEdit(new_scene, Fact(f"the {old.kind} got {opposite} instead", False))
    if mode == "partial":  # a quarter of the way to the requested size
        wanted = SIZES[_resized(old.size, direction)] / SIZES[old.size]
        new_scene = scene.with_object(target, replace(old, radius_scale=1.0 + (wanted - 1.0) / 4.0))
        return TaskEdit(new_scene, Fact(f"the {old.kind} is only slightly {direction}", False))
    raise _unknown_mode("size", mode)


def edit_position(scene: Scene, instr: Instruction, mode: str, rng: np.random.Generator) -> TaskEdit:
    target = int(instr.target)
    old = scene.objects[target]
    cell = str(instr.params["cell"])
    if mode == "correct":
        new_scene = scene.with_object(target, replace(old, cell=cell))
        return TaskEdit(
            new_scene, Fact(f"the {old.kind} now sits {PLACES[cell]}", True), involved=frozenset({target})
        )
    if mode == "wrong_target":
        other = _other_index(scene, target, rng)
        new_scene = scene.with_object(other, replace(scene.objects[other], cell=cell))
        others = Fact(f"the {scene.objects[other].kind} moved {PLACES[cell]} instead", False)
        return TaskEdit(new_scene, Fact(f"the {old.kind} has not moved", False), others)
    if mode == "wrong_attribute":
        wrong = _other_choice(rng, scene.empty_cells(), {cell})
        new_scene = scene.with_object(target, replace(old, cell=wrong))
        return TaskEdit(new_scene, Fact(f"the {old.kind} moved {PLACES[wrong]}", False))
    if mode == "partial":
        (x0, y0), (x1, y1) = old.center_xy(), replace(old, cell=cell).center_xy()
        halfway = replace(old, center=((x0 + x1) / 2, (y0 + y1) / 2))
        return TaskEdit(
            scene.with_object(target, halfway), Fact(f"the {old.kind} stopped halfway along its move", False)
        )
    raise _unknown_mode("position", mode)


def _copies(scene: Scene, template: SceneObject, count: int, alpha: float, rng: np.random.Generator) -> Scene:
    cells = scene.empty_cells()
    chosen = rng.choice(len(cells), size=count, replace=False)
    copies = [replace(template, cell=cells[int(i)], center=None, alpha=alpha) for i in sorted(chosen)]
    return scene.plus_objects(*copies)


def edit_counting(scene: Scene, instr: Instruction, mode: str, rng: np.random.Generator) -> TaskEdit:
    target = int(instr.target)
    old = scene.objects[target]
    n_add = int(instr.params["n_add"])
    total, kinds = NUMBER_WORDS[n_add + 1], plural(old.kind)
    added = frozenset(range(len(scene.objects), len(scene.objects) + n_add)) | {target}
    if mode == "correct":
        return TaskEdit(
            _copies(scene, old, n_add, 1.0, rng), Fact(f"there are now {total} {kinds}", True), involved=added
        )
    if mode == "wrong_target":
        other = scene.objects[_other_index(scene, target, rng)]
        others = Fact(f"extra {plural(other.kind)} were added instead", False)
        return TaskEdit(
            _copies(scene, other, n_add, 1.0, rng), Fact(f"there is still only one {old.kind}", False), others
        )
    if mode == "wrong_attribute":  # one copy too many
        fact = Fact(f"there are now {NUMBER_WORDS[n_add + 2]} {kinds}", False)
        return TaskEdit(_copies(scene, old, n_add + 1, 1.0, rng), fact)
    if mode == "partial":
        return TaskEdit(
            _copies(scene, old, n_add, GHOST_ALPHA, rng),
            Fact(f"the added {kinds} are faint and see-through", False),
        )
    raise _unknown_mode("counting", mode)


OBJECT_EDITORS: dict[str, Callable[[Scene, Instruction, str, np.random.Generator], TaskEdit]] = {
    "add": edit_add,
    "remove": edit_remove,
    "replace": edit_replace,
    "color": edit_color,
    "size": edit_size,
    "position": edit_position,
    "counting": edit_counting,
}
