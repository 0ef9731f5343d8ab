"""Shared fixtures. Every test runs offline: no hub, no W&B upload."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# --- image pairs and records (tests/data, tests/models) ---
import pytest  # noqa: E402


@pytest.fixture
def image_pair_factory(tmp_path):
    """make(name, source_size=(w, h), edited_size=(w, h)) -> (source_path, edited_path): PNGs in tmp_path.

    The source has a red circle, the edited image a blue square, so the two are distinguishable.
    """
    from PIL import Image, ImageDraw

    def make(name="pair", source_size=(64, 48), edited_size=(64, 48)):
        paths = []
        for role, size, color, shape in (("source", source_size, "red", "ellipse"), ("edited", edited_size, "blue", "rectangle")):
            image = Image.new("RGB", size, "white")
            box = (size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4)
            getattr(ImageDraw.Draw(image), shape)(box, fill=color)
            path = tmp_path / f"{name}_{role}.png"
            image.save(path)
            paths.append(path)
        return paths[0], paths[1]

    return make


@pytest.fixture
def edit_record_factory(image_pair_factory):
    """make(pair_id, instruction=..., **EditRecord fields) -> EditRecord with real image files."""
    from ie_eval.data.records import EditRecord

    def make(pair_id="pair-0", instruction="make the red circle blue", source_size=(64, 48), edited_size=(64, 48), **fields):
        source, edited = image_pair_factory(pair_id, source_size, edited_size)
        fields.setdefault("source_id", f"src-{pair_id}")
        return EditRecord(pair_id=pair_id, source_image=source, edited_image=edited, instruction=instruction, **fields)

    return make


@pytest.fixture(scope="session")
def synth_manifest(tmp_path_factory):
    """A small synthetic benchmark, built once per test session."""
    from ie_eval.data.synth.benchmark import generate_benchmark

    return generate_benchmark(tmp_path_factory.mktemp("synth"), n_sources=20, seed=0)
