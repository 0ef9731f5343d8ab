"""Generate the whole benchmark: sources -> twin edits -> critiques -> ratings -> normalized manifest.

Each source draws from its own random stream (seed, source index), so source k is the same
whatever `n_sources` is, and sources can be built in parallel without changing a byte.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from ie_eval.data.normalize import normalize_records
from ie_eval.data.records import CRITIQUE_DIMS, MOS_DIMS, EditRecord
from ie_eval.data.synth import writer
from ie_eval.data.synth.annotators import AnnotatorPanel, make_panel, rate, ratings_by_dim
from ie_eval.data.synth.ceiling import benchmark_ceiling
from ie_eval.data.synth.critiques import accuracy_truth, write_group_critiques
from ie_eval.data.synth.drafts import CritiqueDraft, PairDraft
from ie_eval.data.synth.editor import EditOutcome, apply_edit
from ie_eval.data.synth.filters import visible_change
from ie_eval.data.synth.global_edits import source_image
from ie_eval.data.synth.instructions import (
    RESTORE_TASKS,
    Instruction,
    applicable_failures,
    feasible_tasks,
    sample_instruction,
)
from ie_eval.data.synth.scenes import Scene, sample_scene

SYNTH_VERSION = "1.0"
SOURCE_STREAM, PANEL_STREAM = 0, 1
CORRECT_SHARE = 0.5  # chance that one of an instruction's two edits is the correct one
TWIN_ATTEMPTS = 8


@dataclass(frozen=True)
class SynthOptions:
    """Every knob of the generator, with its default (the CLI reads these defaults)."""

    n_sources: int
    seed: int = 0
    edits_per_source: int = 4
    critiques_per_pair: int = 4
    image_size: int = 128
    annotators: int = 5
    max_objects: int = 4
    workers: int = 1
    # % of critiques that describe the better of the two edits of an instruction (MLLM optimism).
    optimism_percent: int = 75

    def validate(self) -> None:
        """Raise ValueError listing every out-of-range option."""
        checks = [
            (self.n_sources >= 1, f"n_sources must be >= 1, got {self.n_sources}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (
                self.edits_per_source >= 2 and self.edits_per_source % 2 == 0,
                f"edits_per_source must be even and >= 2 (two edits per instruction), got {self.edits_per_source}",
            ),
            (self.critiques_per_pair >= 1, f"critiques_per_pair must be >= 1, got {self.critiques_per_pair}"),
            (self.image_size >= 32, f"image_size must be >= 32, got {self.image_size}"),
            (self.annotators >= 1, f"annotators must be >= 1, got {self.annotators}"),
            (1 <= self.max_objects <= 4, f"max_objects must be in 1..4, got {self.max_objects}"),
            (self.workers >= 1, f"workers must be >= 1, got {self.workers}"),
            (0 <= self.optimism_percent <= 100, f"optimism_percent must be in 0..100, got {self.optimism_percent}"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ValueError("invalid synth options: " + "; ".join(problems))

    def output_args(self) -> dict[str, int]:
        """The options that shape the output (all but `workers`), for the config file."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "workers"}


def stream_rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    """An independent generator per (seed, stream, index)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))


def choose_tasks(feasible: list[str], count: int, rng: np.random.Generator) -> list[str]:
    """`count` task types, distinct while the feasible ones last."""
    order = [feasible[int(i)] for i in rng.permutation(len(feasible))]
    extra = [feasible[int(i)] for i in rng.integers(len(feasible), size=max(0, count - len(order)))]
    return (order + extra)[:count]


def choose_twin_modes(applicable: tuple[str, ...], rng: np.random.Generator) -> tuple[str, str]:
    """Two different failure modes for one instruction (half the time one is `correct`), random order."""
    failures = [m for m in applicable if m != "correct"]
    first = "correct" if rng.random() < CORRECT_SHARE else failures[int(rng.integers(len(failures)))]
    rest = [m for m in applicable if m != first]
    second = rest[int(rng.integers(len(rest)))]
    return (first, second) if rng.random() < 0.5 else (second, first)


def edit_twins(
    scene: Scene, instruction: Instruction, size: int, rng: np.random.Generator
) -> list[EditOutcome]:
    """Two edits of one instruction in different failure modes whose images differ visibly.

    A pair that looks the same (e.g. pixelation left on a flat background) is redrawn: critique
    accuracy must be decidable from the image.
    """
    applicable = applicable_failures(instruction, scene)
    for _attempt in range(TWIN_ATTEMPTS):
        outcomes = [
            apply_edit(scene, instruction, mode, size, rng) for mode in choose_twin_modes(applicable, rng)
        ]
        if visible_change(outcomes[0].image, outcomes[1].image):
            break
    return outcomes


def build_group(
    scene: Scene,
    index: int,
    group: int,
    task: str,
    options: SynthOptions,
    images_dir: Path,
    written: set[str],
    rng: np.random.Generator,
) -> list[PairDraft]:
    """One instruction, its two edits and the critiques shared by both; images written to disk.

    `written` holds the source image names this source already wrote (the clean one is shared).
    """
    source_id, group_id = f"s{index:05d}", f"s{index:05d}_g{group}"
    instruction = sample_instruction(task, scene, rng)
    outcomes = edit_twins(scene, instruction, options.image_size, rng)
    critiques = write_group_critiques(
        outcomes, options.critiques_per_pair, group_id, rng, optimism=options.optimism_percent / 100
    )
    source_name = f"src_{index:05d}_g{group}.png" if task in RESTORE_TASKS else f"src_{index:05d}.png"
    if source_name not in written:
        writer.save_png(source_image(scene, instruction, options.image_size), images_dir / source_name)
        written.add(source_name)
    pair_ids = (f"{source_id}_e{2 * group:02d}", f"{source_id}_e{2 * group + 1:02d}")
    drafts = []
    for k, outcome in enumerate(outcomes):
        edited_name = f"edit_{index:05d}_{2 * group + k:02d}.png"
        writer.save_png(outcome.image, images_dir / edited_name)
        attached = tuple(
            CritiqueDraft(f"c{j}", c, accuracy_truth(c.claims, outcome.facts, rng))
            for j, c in enumerate(critiques)
        )
        drafts.append(
            PairDraft(
                pair_id=pair_ids[k],
                source_id=source_id,
                group_id=group_id,
                group_pair_ids=pair_ids,
                source_image=f"{writer.IMAGES_DIR}/{source_name}",
                edited_image=f"{writer.IMAGES_DIR}/{edited_name}",
                instruction=instruction.text,
                task_type=instruction.task_type,
                failure_mode=outcome.failure_mode,
                truth_mos=outcome.truth_mos,
                facts=dict(outcome.facts),
                details=dict(outcome.details),
                critiques=attached,
            )
        )
    return drafts


def attach_ratings(
    drafts: list[PairDraft], panel: AnnotatorPanel, rng: np.random.Generator
) -> list[PairDraft]:
    """Simulated 1..5 ratings: MOS dims once per pair, critique dims per attached critique."""
    mos = rate(panel, np.asarray([d.truth_mos for d in drafts]), rng)
    critique_truth = [c.truth for d in drafts for c in d.critiques]
    critique_ratings = iter(rate(panel, np.asarray(critique_truth), rng))
    rated = []
    for draft, pair_ratings in zip(drafts, mos, strict=True):
        critiques = tuple(
            replace(c, ratings=ratings_by_dim(panel, CRITIQUE_DIMS, next(critique_ratings)))
            for c in draft.critiques
        )
        rated.append(
            replace(draft, mos_ratings=ratings_by_dim(panel, MOS_DIMS, pair_ratings), critiques=critiques)
        )
    return rated


def build_source(
    index: int, options: SynthOptions, panel: AnnotatorPanel, images_dir: Path
) -> list[PairDraft]:
    """All pairs of source scene `index`, rated, with their images written under `images_dir`."""
    rng = stream_rng(options.seed, SOURCE_STREAM, index)
    scene = sample_scene(rng, options.max_objects)
    tasks = choose_tasks(feasible_tasks(scene), options.edits_per_source // 2, rng)
    written: set[str] = set()
    drafts = []
    for group, task in enumerate(tasks):
        drafts.extend(build_group(scene, index, group, task, options, images_dir, written, rng))
    return attach_ratings(drafts, panel, rng)


def build_all_sources(options: SynthOptions, panel: AnnotatorPanel, images_dir: Path) -> list[PairDraft]:
    """Every source in index order; with workers > 1, sources are built in a process pool."""
    build = partial(build_source, options=options, panel=panel, images_dir=images_dir)
    indices = range(options.n_sources)
    if options.workers == 1:
        return [d for index in indices for d in build(index)]
    with multiprocessing.get_context("fork").Pool(options.workers) as pool:
        chunks = pool.imap(build, indices, chunksize=max(1, options.n_sources // (8 * options.workers)))
        return [d for chunk in chunks for d in chunk]


def _as_record(pair: PairDraft, critique: CritiqueDraft) -> EditRecord:
    return EditRecord(
        pair_id=pair.pair_id,
        source_id=pair.source_id,
        source_image=Path(pair.source_image),
        edited_image=Path(pair.edited_image),
        instruction=pair.instruction,
        critique=critique.critique.text,
        critique_id=critique.critique_id,
        ratings={**pair.mos_ratings, **critique.ratings},
        task_type=pair.task_type,
    )


def normalized_targets(
    pairs: list[PairDraft],
) -> tuple[list[tuple[float, float, float]], list[list[tuple[float, float, float]]]]:
    """ECDF-probit targets via `normalize_records` over the whole set, exactly as a reader of the
    manifest would recompute them (MOS ratings count once per pair, critiques once per row).

    Returns (mos per pair, critique_scores per pair per attached critique).
    """
    normalized = iter(normalize_records([_as_record(p, c) for p in pairs for c in p.critiques]))
    mos, scores = [], []
    for pair in pairs:
        records = [next(normalized) for _ in pair.critiques]
        mos.append(records[0].mos)
        scores.append([r.critique_scores for r in records])
    return mos, scores


def generate_benchmark(out_dir: str | Path, n_sources: int, seed: int = 0, **options: int) -> Path:
    """Write the synthetic benchmark under `out_dir` and return the path of its manifest.jsonl.

    `options` are the other `SynthOptions` fields (edits_per_source, critiques_per_pair,
    image_size, annotators, max_objects, workers). Same arguments -> byte-identical manifest.
    """
    known = {f.name for f in dataclasses.fields(SynthOptions)} - {"n_sources", "seed"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown synth option(s) {unknown}; known options are {sorted(known)}")
    config = SynthOptions(n_sources=int(n_sources), seed=int(seed), **{k: int(v) for k, v in options.items()})
    config.validate()
    out = Path(out_dir)
    images_dir = out / writer.IMAGES_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    panel = make_panel(config.annotators, stream_rng(config.seed, PANEL_STREAM))
    pairs = build_all_sources(config, panel, images_dir)
    mos, critique_scores = normalized_targets(pairs)
    ceiling = benchmark_ceiling(
        [p.truth_mos for p in pairs], mos,
        [c.truth for p in pairs for c in p.critiques], [s for per_pair in critique_scores for s in per_pair],
    )
    return writer.write_benchmark(out, pairs, mos, critique_scores, config.output_args(), SYNTH_VERSION, ceiling)
