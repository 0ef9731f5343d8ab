"""`ie-eval critique`: a saved critic writes critiques, their parsed scores and its head scores.

    ie-eval critique --ckpt runs/sft-tiny/export --manifest data/synth/manifest.jsonl \
        --split test --out runs/sft-tiny/critiques.jsonl

One output row per (source, edited) pair, in manifest order. Batches are left-padded prompts:
the head scores come from their prefill (score-only mode), the text from greedy decoding. When
the manifest has MOS (and critiques), a metrics JSON is written next to the output: head and
parsed-text PLCC / SRCC / KRCC, format stability, ROUGE-1 against the best reference critique, and
on the synthetic benchmark critique factuality (share of claims true of the edited image).
`--blank-images` runs the same with both images mid-gray (the no-vision control).

Resumable: rows are appended to OUT.partial as they are generated, and OUT (manifest order) and the
metrics are written from all of them at the end. A rerun after an interruption, with the same
checkpoint, data and generation options, critiques only the pairs the partial file lacks; a
finished OUT is refused unless --overwrite, which also starts an interrupted run over.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image

from ie_eval.commands.outputs import PartialRows, add_output_flags, refuse_existing, write_rows_atomically
from ie_eval.data.collate import EditCollator, InputBudget
from ie_eval.data.critique_format import sft_target
from ie_eval.data.datamodule import blank_images
from ie_eval.data.phased import TARGET_FORMATS, record_facts, sft_targets
from ie_eval.data.readers import read_manifests
from ie_eval.data.records import EditRecord
from ie_eval.data.splits import DEFAULT_SALT, split_records
from ie_eval.data.synth.ceiling import ceiling_of_records
from ie_eval.metrics.critique import CritiqueMetrics
from ie_eval.models.critic import CriticModel
from ie_eval.progress import disable_progress, track

log = logging.getLogger(__name__)


def critique_batches(
    model: CriticModel, records: Sequence[EditRecord], collator: EditCollator, batch_size: int, max_new_tokens: int,
) -> Iterator[list[dict]]:
    """Output rows of `records`, one list per batch of `batch_size`, as each batch finishes."""
    device = next(model.parameters()).device
    dims = model.dims
    for start in track(range(0, len(records), batch_size), "critiquing"):
        chunk = records[start : start + batch_size]
        batch = collator(chunk)
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        result = model.critique(batch, max_new_tokens)
        scores = result.scores.float().cpu()
        yield [
            {
                "pair_id": record.pair_id,
                "source_id": record.source_id,
                "instruction": record.instruction,
                "critique": text,
                "parsed_scores": dict(zip(dims, parsed.scores, strict=True)) if parsed.scores is not None else None,
                "parsed_overall": parsed.overall,
                "structured": parsed.structured,
                "head_scores": {d: round(float(v), 6) for d, v in zip(dims, row_scores, strict=True)},
                "mos": dict(zip(dims, record.mos, strict=True)) if record.mos is not None else None,
            }
            for record, text, parsed, row_scores in zip(chunk, result.texts, result.parsed, scores, strict=True)
        ]


def critique_metrics(model: CriticModel, records: Sequence[EditRecord], rows: Sequence[dict]) -> CritiqueMetrics:
    """The metrics of the written rows (one per record, same order): head scores as written, critiques
    parsed again in the critic's format, references and facts from the records."""
    dims = model.dims
    metrics = CritiqueMetrics(dims)
    if not records:
        return metrics
    scores = torch.tensor([[row["head_scores"][d] for d in dims] for row in rows], dtype=torch.float32)
    missing = [math.nan] * len(dims)
    mos = torch.tensor([list(r.mos) if r.mos is not None else missing for r in records], dtype=torch.float32)
    mos_mask = torch.tensor([r.mos is not None for r in records], dtype=torch.bool)
    texts = [row["critique"] for row in rows]
    metrics.update_scores(scores, mos, mos_mask)
    metrics.update_texts(
        [model.parse(text) for text in texts], mos, mos_mask, texts,
        [sft_target(r.critique, model.critique_format) if r.critique else None for r in records],  # its format
        [record_facts(r) for r in records],
    )
    return metrics


def select_records(manifest: str, split: str | None, ratios: dict[str, float], salt: str) -> list[EditRecord]:
    """The manifest's records, optionally one split of its source-disjoint hash split."""
    records = read_manifests([manifest]).records
    if split is None:
        return records
    splits = split_records(records, ratios, salt=salt)
    if split not in splits:
        raise SystemExit(f"--split {split!r}: not one of {sorted(splits)}")
    return splits[split]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ie-eval critique", description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True, help="directory written by CriticModel.save_pretrained (a run's export/)")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True, help="output JSONL, one row per pair")
    parser.add_argument("--metrics", default=None, help="metrics JSON (default: OUT with .metrics.json)")
    parser.add_argument("--split", default=None, help="only this split of the source-disjoint split (e.g. test)")
    parser.add_argument("--split-ratios", default='{"train": 0.8, "val": 0.1, "test": 0.1}', type=json.loads)
    parser.add_argument("--split-salt", default=DEFAULT_SALT)
    parser.add_argument(
        "--reference-format", choices=TARGET_FORMATS, default="structured", help="of the best critique per pair (ROUGE)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--max-pixels", type=int, default=None, help="per-image pixel cap (default: the export's training budget)")
    parser.add_argument("--min-pixels", type=int, default=None, help="(default: the export's training budget)")
    parser.add_argument("--max-length", type=int, default=None, help="longest prompt (default: the export's training budget)")
    parser.add_argument("--limit", type=int, default=None, help="first N pairs only")
    parser.add_argument(
        "--blank-images", action="store_true", help="replace both images with mid-gray (the no-vision control)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_output_flags(parser)
    return parser.parse_args(list(argv))


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    refuse_existing([args.out], args.overwrite)
    if args.no_progress:
        disable_progress()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = CriticModel.from_pretrained(args.ckpt, device=args.device)
    records = select_records(args.manifest, args.split, args.split_ratios, args.split_salt)
    records = sft_targets(records, "best", args.reference_format)  # one row per pair, best critique as reference
    records = records[: args.limit] if args.limit else records
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.blank_images:
        blank = out.with_suffix(".blank.png")
        Image.new("RGB", (64, 64), (128, 128, 128)).save(blank)
        records = blank_images(records, blank)
    budget = InputBudget.of(model.input_budget, max_pixels=args.max_pixels, min_pixels=args.min_pixels,
                            max_length=args.max_length)
    collator = EditCollator(
        model.processor, task="critic", mode="generate", prompt_suffix=model.prompt_suffix,
        critique_format=model.critique_format, **budget.as_dict(),
    )
    started = time.perf_counter()
    with PartialRows(out, resume_identity(args), key="pair_id", overwrite=args.overwrite) as partial:
        todo = [r for r in records if r.pair_id not in partial.done]
        for rows in critique_batches(model, todo, collator, args.batch_size, args.max_new_tokens):
            partial.append(rows)
        rows = [partial.done[r.pair_id] for r in records]
    seconds = time.perf_counter() - started
    summary = {k: round(float(v), 4) for k, v in critique_metrics(model, records, rows).compute().items()}
    summary |= {"pairs": len(records), "resumed_pairs": len(records) - len(todo), "seconds": round(seconds, 1),
                "blank_images": args.blank_images}
    ceiling = ceiling_of_records(records, "mos")
    if ceiling:
        summary["noise_ceiling"] = {dim: round(value, 4) for dim, value in ceiling.items()}
    metrics_path = Path(args.metrics) if args.metrics else out.with_suffix(".metrics.json")
    metrics_path.write_text(json.dumps(summary, indent=2) + "\n")
    write_rows_atomically(rows, out)  # after the metrics: OUT present means the run finished
    partial.remove()  # last: until here a rerun resumes instead of generating everything again
    log.info("wrote %d critiques to %s in %.1fs; metrics %s", len(records), out, seconds, metrics_path)
    print(json.dumps(summary))
    return 0


def resume_identity(args: argparse.Namespace) -> dict:
    """The arguments that shape the rows: a partial run under other ones is not resumed.
    (--limit is not one: a rerun with a larger limit critiques only the pairs the first run lacked.)"""
    keys = ("split", "split_ratios", "split_salt", "max_new_tokens", "max_pixels", "min_pixels",
            "max_length", "blank_images")
    paths = {"ckpt": str(Path(args.ckpt).resolve()), "manifest": str(Path(args.manifest).resolve())}
    return paths | {key: getattr(args, key) for key in keys}
