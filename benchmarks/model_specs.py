"""Backbone specs for the benchmarks: a tiny preset name, or a real-size architecture from
`benchmarks/architectures/<name>.json` (the tiny Qwen3.5 classes at a checkpoint's sizes, random weights)."""

from __future__ import annotations

import json
from pathlib import Path

ARCHITECTURES = Path(__file__).resolve().parent / "architectures"


def backbone_spec(name: str, dtype: str = "float32") -> tuple[str, dict]:
    """(preset, load_backbone keyword arguments) for `name`."""
    path = ARCHITECTURES / f"{name}.json"
    if path.is_file():
        spec = json.loads(path.read_text())
        return spec["preset"], {"dtype": dtype, **spec["overrides"]}
    return name, {"dtype": dtype}
