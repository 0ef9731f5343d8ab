"""The pretraining world: seeded tasks in the benchmark's language, disjoint from the benchmark."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from ie_eval.data.pretrain.describe import (
    LOOKS,
    describe_scene,
    parse_description,
    reading_order,
    sample_world_scene,
)
from ie_eval.data.pretrain.tasks import (
    HELDOUT_STREAM,
    TASKS,
    TRAIN_STREAM,
    TaskMix,
    heldout_samples,
    make_sample,
    verify_answer,
)
from ie_eval.data.synth.benchmark import SOURCE_STREAM, generate_benchmark, stream_rng
from ie_eval.data.synth.critiques import VAGUE_TEXT
from ie_eval.data.synth.scenes import sample_scene

MIX = TaskMix(image_size=64)


def scene_key(scene) -> str:
    return json.dumps([scene.background.texture_seed, [(o.kind, o.color, o.cell, o.offset) for o in scene.objects]])


def test_same_index_gives_the_same_sample_and_neighbours_differ() -> None:
    first, again, other = (make_sample(3, TRAIN_STREAM, i, MIX) for i in (5, 5, 6))
    assert first.answer == again.answer and first.task == again.task
    assert all(np.array_equal(a, b) for a, b in zip(first.images, again.images, strict=True))
    assert (other.answer, other.task) != (first.answer, first.task) or not np.array_equal(other.images[0], first.images[0])


def test_no_benchmark_source_scene_occurs_in_the_pretraining_streams(tmp_path) -> None:
    """The benchmark draws source k from stream (seed, SOURCE_STREAM, k); pretraining never uses that stream."""
    manifest = generate_benchmark(tmp_path, n_sources=60, seed=0, image_size=64)
    benchmark_images = {
        hashlib.sha1((manifest.parent / row["source_image"]).read_bytes()).hexdigest()
        for row in map(json.loads, manifest.read_text().splitlines())
    }
    benchmark_scenes = {scene_key(sample_scene(stream_rng(0, SOURCE_STREAM, k))) for k in range(60)}
    for stream in (TRAIN_STREAM, HELDOUT_STREAM):
        for index in range(400):
            rng = stream_rng(0, stream, index)
            assert scene_key(sample_scene(rng)) not in benchmark_scenes
    import io

    from PIL import Image

    for index in range(200):
        sample = make_sample(0, TRAIN_STREAM, index, MIX)
        for image in sample.images:
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG", compress_level=3)
            assert hashlib.sha1(buffer.getvalue()).hexdigest() not in benchmark_images
    # The check can fail: the benchmark's own stream does reproduce its scenes.
    assert scene_key(sample_scene(stream_rng(0, SOURCE_STREAM, 0))) in benchmark_scenes


def test_every_task_appears_in_the_mix_and_a_zero_weight_task_never_does() -> None:
    every_task = TaskMix(image_size=64, ask_image=0.5)  # ask_image is off by default
    seen = {make_sample(0, TRAIN_STREAM, i, every_task).task for i in range(200)}
    assert seen == set(TASKS)
    no_describe = TaskMix(image_size=64, describe=0.0)
    assert "describe" not in {make_sample(0, TRAIN_STREAM, i, no_describe).task for i in range(100)}


def test_negative_or_all_zero_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="task weights"):
        TaskMix(describe=0, change=0, verify_edit=0, verify_image=0).weights()
    with pytest.raises(ValueError, match="task weights"):
        TaskMix(describe=-1).weights()


def test_description_parses_back_to_the_scene() -> None:
    for index in range(100):
        rng = stream_rng(0, TRAIN_STREAM, index)
        scene = sample_world_scene(rng)
        look = LOOKS[index % len(LOOKS)]
        parsed = parse_description(describe_scene(scene, look))
        truth = [(o.size, o.color, o.kind, o.cell, o.alpha < 1) for o in reading_order(scene.objects)]
        assert [(o.size, o.color, o.kind, o.cell, o.faint) for o in parsed.objects] == truth
        assert (parsed.background_color, parsed.background_texture, parsed.look) == (
            scene.background.color, scene.background.texture, look,
        )


def test_a_garbled_description_parses_to_nothing_rather_than_raising() -> None:
    parsed = parse_description("objects: huge teal blob somewhere. background: plaid. look: weird")
    assert parsed.objects == () and parsed.background_color is None and parsed.look is None


def test_change_answers_state_the_benchmark_facts_of_the_edit() -> None:
    samples = heldout_samples("change", 40, 0, MIX)
    for sample in samples:
        facts = sample.truth["facts"]
        assert sample.answer == " ".join(f"{k}: {facts[k].text}." for k in ("target", "others", "quality"))
        assert len(sample.images) == 2
    assert any(s.truth["failure_mode"] == "no_op" for s in heldout_samples("change", 400, 0, TaskMix(image_size=32)))


def test_edit_claims_are_balanced_and_each_label_matches_the_shown_edit() -> None:
    labels = []
    for sample in heldout_samples("verify_edit", 150, 0, MIX):
        claims, truth = sample.truth["claims"], sample.truth["labels"]
        assert sample.answer == verify_answer(truth)
        assert 1 <= len(claims) <= MIX.max_claims
        labels += truth
    assert 0.4 < np.mean(labels) < 0.6
    vague = {text for text in VAGUE_TEXT.values()}
    assert any(c in vague for s in heldout_samples("verify_edit", 150, 0, MIX) for c in s.truth["claims"])


def test_image_claims_are_true_exactly_when_the_image_shows_them() -> None:
    from ie_eval.data.pretrain.describe import object_phrase

    for sample in heldout_samples("verify_image", 80, 0, MIX):
        scene, look = sample.truth["scene"], sample.truth["look"]
        phrases = {f"there is a {object_phrase(o)}" for o in scene.objects}
        for claim, label in zip(sample.truth["claims"], sample.truth["labels"], strict=True):
            if claim.startswith("there is"):
                assert (claim in phrases) == label
            elif claim.startswith("the background is"):
                assert (claim == f"the background is {scene.background.color}") == label
            else:
                assert (claim == f"the look is {look}") == label


def test_heldout_sets_of_different_tasks_do_not_share_indices() -> None:
    ids = [s.sample_id for task in TASKS for s in heldout_samples(task, 20, 0, MIX)]
    assert len(ids) == len(set(ids))
    with pytest.raises(ValueError, match="unknown pretraining task"):
        heldout_samples("caption", 1, 0, MIX)
