"""What an edit did, as checkable statements: the ground truth critiques are judged against.

Every edited image has one `Fact` per key: what happened to the instructed change (`target`),
to the rest of the content (`others`) and to image quality (`quality`). A specific critique
claim is true of an image iff it equals that image's fact text; a vague claim is true iff it
agrees with the fact's `ok` flag.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ie_eval.data.synth.scenes import Scene

FACT_KEYS: tuple[str, str, str] = ("target", "others", "quality")


@dataclass(frozen=True)
class Fact:
    """A short observation about an edited image; `ok` is whether it is what the instruction wanted."""

    text: str
    ok: bool


UNCHANGED = Fact("the rest of the content is unchanged", True)
CLEAN = Fact("no new artifacts were introduced", True)


@dataclass(frozen=True)
class TaskEdit:
    """A task editor's result: the edited scene, a pixel `post` step, and the facts it establishes.

    `involved` lists indices (in the edited scene) of objects the instruction touches, which a
    collateral change must leave alone.
    """

    scene: Scene
    target: Fact
    others: Fact = UNCHANGED
    involved: frozenset[int] = frozenset()
    post: Callable[[np.ndarray], np.ndarray] | None = None
