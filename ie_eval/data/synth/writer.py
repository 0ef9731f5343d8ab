"""On-disk form of the synthetic benchmark: PNGs, manifest.jsonl, pairs.jsonl, config and README.

Rows are plain JSON with paths relative to the manifest's folder, written in a fixed order
with fixed float rounding, so the same arguments give byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ie_eval.data.records import CRITIQUE_DIMS, MOS_DIMS
from ie_eval.data.synth.drafts import CritiqueDraft, PairDraft

IMAGES_DIR = "images"
MANIFEST_NAME = "manifest.jsonl"
PAIRS_NAME = "pairs.jsonl"
CONFIG_NAME = "synth_config.json"
README_NAME = "README.md"
PNG_COMPRESS_LEVEL = 3  # measured on 128 px scenes: as fast as level 1, files within ~40% of level 6
FLOAT_DIGITS = 6


def save_png(image: np.ndarray, path: Path) -> None:
    """Write an RGB uint8 (H, W, 3) array as PNG."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{path}: expected an RGB uint8 image, got {image.dtype} {image.shape}")
    Image.fromarray(image, mode="RGB").save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def rounded(values: Sequence[float]) -> list[float]:
    return [round(float(v), FLOAT_DIGITS) for v in values]


def write_jsonl(path: Path, rows: Iterable[Mapping[str, object]]) -> int:
    """One compact JSON object per line; returns the number of rows written."""
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, separators=(", ", ": ")))
            handle.write("\n")
            count += 1
    return count


def _pair_fields(pair: PairDraft, mos: Sequence[float]) -> dict[str, object]:
    """The manifest fields of the edit itself (ids, images, instruction, task type, MOS), first in every row."""
    return {
        "pair_id": pair.pair_id,
        "source_id": pair.source_id,
        "source_image": pair.source_image,
        "edited_image": pair.edited_image,
        "instruction": pair.instruction,
        "task_type": pair.task_type,
        "mos": rounded(mos),
    }


def manifest_row(
    pair: PairDraft, critique: CritiqueDraft, mos: Sequence[float], critique_scores: Sequence[float]
) -> dict[str, object]:
    """One (pair, critique) record in the manifest schema, with construction truth in `meta`."""
    text = critique.critique
    return {
        **_pair_fields(pair, mos),
        "critique": text.text,
        "critique_id": critique.critique_id,
        "critique_scores": rounded(critique_scores),
        "ratings": {**pair.mos_ratings, **critique.ratings},
        "meta": {
            "failure_mode": pair.failure_mode,
            "truth_mos": rounded(pair.truth_mos),
            "truth_critique": rounded(critique.truth),
            "style": text.style,
            "accurate": critique.accuracy > 0.5,
            "logical": text.logical,
            "final_scores": list(text.final),
            "claims": [{"key": c.key, "text": c.text, "holds": c.holds(pair.facts)} for c in text.claims],
            "facts": {key: {"text": f.text, "ok": f.ok} for key, f in pair.facts.items()},
            "text_id": text.text_id,
            "describes_pair_id": pair.group_pair_ids[text.describes],
            "twin_pair_id": pair.twin_pair_id,
            "group_id": pair.group_id,
        },
    }


def pair_row(pair: PairDraft, mos: Sequence[float]) -> dict[str, object]:
    """One pair without critiques: the critic's score-only view."""
    return {
        **_pair_fields(pair, mos),
        "ratings": dict(pair.mos_ratings),
        "meta": {
            "failure_mode": pair.failure_mode,
            "truth_mos": rounded(pair.truth_mos),
            "facts": {key: {"text": f.text, "ok": f.ok} for key, f in pair.facts.items()},
            "twin_pair_id": pair.twin_pair_id,
            "group_id": pair.group_id,
            **pair.details,
        },
    }


def write_benchmark(
    out_dir: Path,
    pairs: Sequence[PairDraft],
    mos: Sequence[Sequence[float]],
    critique_scores: Sequence[Sequence[Sequence[float]]],
    options: Mapping[str, object],
    version: str,
    noise_ceiling: Mapping[str, float] | None = None,
) -> Path:
    """Write manifest.jsonl, pairs.jsonl, synth_config.json and README.md; return the manifest path."""
    manifest = out_dir / MANIFEST_NAME
    records = write_jsonl(
        manifest,
        (
            manifest_row(pair, critique, pair_mos, scores)
            for pair, pair_mos, pair_scores in zip(pairs, mos, critique_scores, strict=True)
            for critique, scores in zip(pair.critiques, pair_scores, strict=True)
        ),
    )
    write_jsonl(
        out_dir / PAIRS_NAME, (pair_row(pair, pair_mos) for pair, pair_mos in zip(pairs, mos, strict=True))
    )
    counts = {"sources": len({p.source_id for p in pairs}), "pairs": len(pairs), "records": records}
    write_config(out_dir / CONFIG_NAME, options, counts, version, noise_ceiling or {})
    write_readme(out_dir / README_NAME, counts, options)
    return manifest


def write_config(
    path: Path, options: Mapping[str, object], counts: Mapping[str, int], version: str,
    noise_ceiling: Mapping[str, float],
) -> None:
    """The generator arguments and version (enough to regenerate the set byte for byte) and the
    noise ceiling per dimension (`ceiling.py`)."""
    config = {
        "generator": "ie_eval.data.synth",
        "version": version,
        "args": dict(options),
        "counts": dict(counts),
        "noise_ceiling": dict(noise_ceiling),
    }
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def write_readme(path: Path, counts: Mapping[str, int], options: Mapping[str, object]) -> None:
    path.write_text(
        README_TEMPLATE.format(
            **counts,
            args=" ".join(f"--{k.replace('_', '-')} {v}" for k, v in options.items()),
            mos_dims=", ".join(MOS_DIMS),
            critique_dims=", ".join(CRITIQUE_DIMS),
        ),
        encoding="utf-8",
    )


README_TEMPLATE = """# Procedural edit-evaluation benchmark

Generated by `ie-eval data synth {args}`: {sources} source scenes, {pairs} edited pairs,
{records} (pair, critique) records. Everything is procedural; the truth is known by construction.

## Files
- `manifest.jsonl`: one row per (pair, critique): `pair_id`, `source_id`, `source_image`,
  `edited_image` (paths relative to this folder), `instruction`, `task_type`, `mos`, `critique`,
  `critique_id`, `critique_scores`, `ratings`, `meta`.
- `pairs.jsonl`: one row per pair, without critiques (the critic's score-only view).
- `images/`: `src_SSSSS.png` (clean sources), `src_SSSSS_gG.png` (degraded sources of low-level
  tasks), `edit_SSSSS_EE.png` (edited images).
- `synth_config.json`: arguments, generator version and the noise ceiling: per dimension, the
  SRCC between the construction truth and the annotated target (what a perfect model reaches).

## Targets
- `ratings`: raw 1..5 ratings of simulated annotators (each with its own bias, scale and noise),
  `{{dim: {{annotator: rating}}}}` over {mos_dims} (shared by a pair's rows) and
  {critique_dims} (per row).
- `mos` and `critique_scores` = ECDF-probit normalization (`ie_eval.data.normalize.normalize_records`)
  of these ratings over the whole manifest (MOS ratings count once per pair).

## Truth (`meta`)
- `truth_mos` in [0, 1] follows from the edit's `failure_mode`: `correct`, `wrong_target`
  (low alignment and preservation), `wrong_attribute` (low alignment), `partial`,
  `collateral` (an uninvolved object changed: low preservation), `artifacts` (noise / blur /
  blocky JPEG: quality falls with severity).
- `truth_critique` = (logicality, accuracy, usefulness) in [0, 1]. Logicality: do the final
  scores follow from the critique's own observations. Usefulness: specific styles high,
  `generic` style low. Accuracy: are the critique's claims true of THIS edited image.
- Every instruction is edited twice (`group_id`, `twin_pair_id`), and every critique text is
  attached to both edits: it describes one of them (`describes_pair_id`) and makes at least one
  claim on which the two differ, so it is accurate for one pair and inaccurate for the other.
  Accuracy cannot be predicted from the text alone; it needs the edited image.
"""
