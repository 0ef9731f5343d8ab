"""`ie-eval eval --scorer SPEC --bench SPEC --out DIR`: run one evaluator on one benchmark.

    ie-eval eval --scorer rm:runs/rm-tiny/export --bench synth:data/synth --split test --out runs/eval/rm
    ie-eval eval --scorer ssim --bench synth:data/synth --split test --out runs/eval/ssim
    ie-eval eval --scorer judge:tiny-qwen3.5 --bench kway:editreward_bench.csv --out runs/eval/judge

Writes DIR/results.json (every number), DIR/results.md (tables), DIR/predictions.jsonl (one row
per scored record, with generated text) and PNGs: scatter.png (prediction vs truth per dim) and
task_srcc.png (SRCC per task type). Scorer and bench SPECs: docs/evaluation.md. An earlier run's
results in DIR are kept unless `--overwrite`. Predictions are appended to DIR/predictions.jsonl.partial
as each batch finishes; a rerun after an interruption, with the same scorer, bench and options,
scores only the records it lacks (`--overwrite` starts over), and the results are computed from all. `--wandb-project P` also logs results.json, results.md
and the plots as a W&B artifact of type "evaluation" (`eval-<DIR name>`), in a run named after DIR;
it runs offline without W&B credentials, and WANDB_MODE wins when set.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ie_eval.commands.outputs import PartialRows, add_output_flags, refuse_existing
from ie_eval.eval.predictions import prediction_row, read_predictions, write_predictions
from ie_eval.metrics.preference import CALIBRATE, PRED_TIES, TRUTH_TIES, TiePolicy
from ie_eval.progress import disable_progress

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ie-eval eval", description=__doc__.split("\n")[0])
    parser.add_argument("--scorer", required=True, help="rm:DIR, critic:DIR, critic-cot:DIR, pairwise-rm:DIR, "
                        "judge:BACKBONE, judge-rm:BACKBONE, psnr, ssim, ms-ssim, gmsd")
    parser.add_argument("--bench", required=True, help="synth:DIR, manifest:PATH, pairwise:PATH, kway:PATH, ...")
    parser.add_argument("--out", required=True)
    parser.add_argument("--split", default=None, help="only this split of the source-disjoint split (e.g. test)")
    parser.add_argument("--limit", type=int, default=None, help="first N pointwise items and first N groups")
    parser.add_argument("--device", default=None, help="default: cuda when available")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=512, help="generative scorers (judge, critic-cot)")
    parser.add_argument("--max-pixels", type=int, default=None, help="per-image budget (default: the model's)")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truth-ties", choices=TRUTH_TIES, default=None, help="override the bench's tie policy")
    parser.add_argument("--pred-ties", choices=PRED_TIES, default=None)
    parser.add_argument("--tie-tolerance", default=None, help=f"a number >= 0 or '{CALIBRATE}'")
    parser.add_argument("--no-strict", action="store_true", help="skip bad benchmark rows (counted)")
    parser.add_argument("--blank-images", action="store_true",
                        help="replace every image with mid-gray (the no-vision control)")
    parser.add_argument("--wandb-project", default=None,
                        help="also log the results as a W&B 'evaluation' artifact to this project (off by default)")
    add_output_flags(parser)
    return parser.parse_args(list(argv))


RESULT_FILES = ("results.json", "results.md", "predictions.jsonl")


def log_to_wandb(project: str, out: Path, results: dict) -> None:
    """results.json, results.md and the plots as one W&B artifact of type "evaluation", in a run named after `out`."""
    import wandb

    from ie_eval.lit.loggers import artifact_name, log_files_artifact, wandb_mode

    specs = {"scorer": results["scorer"]["spec"], "bench": results["bench"]["spec"], "split": results["bench"]["split"]}
    # Under the results, as training runs keep theirs under the run directory; WANDB_DIR wins when set.
    run = wandb.init(project=project, name=out.name, job_type="eval", mode=wandb_mode(), config=specs,
                     dir=os.environ.get("WANDB_DIR") or str(out))
    try:
        files = [out / name for name in ("results.json", "results.md", *results["plots"])]
        log_files_artifact(run, artifact_name("eval", run), "evaluation", files, metadata=specs)
    finally:
        run.finish()


def tie_policy(args: argparse.Namespace, default: TiePolicy) -> TiePolicy:
    tolerance = args.tie_tolerance
    if tolerance is not None and tolerance != CALIBRATE:
        tolerance = float(tolerance)
    return TiePolicy(
        truth_ties=args.truth_ties or default.truth_ties,
        pred_ties=args.pred_ties or default.pred_ties,
        tolerance=default.tolerance if tolerance is None else tolerance,
    )


def write_plots(results: dict, out: Path) -> list[str]:
    """scatter.png and task_srcc.png when there is something to draw; returns the files written."""
    from ie_eval.eval.plots import grouped_bars, scatter_plot

    written = []
    dims, preds, truths = read_predictions(out / "predictions.jsonl")
    label = f"{results['scorer']['spec']} on {results['bench']['spec']}"
    if len(preds) >= 2:
        written.append(scatter_plot(preds, truths, dims, out / "scatter.png", f"{label}: prediction vs truth").name)
    per_task = (results.get("pointwise") or {}).get("per_task_srcc") or {}
    if per_task:
        values = {task: {d: row.get(d) for d in dims} for task, row in per_task.items()}
        written.append(grouped_bars(values, out / "task_srcc.png", f"{label}: SRCC per task type", "SRCC").name)
    return written


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    refuse_existing([Path(args.out) / name for name in RESULT_FILES], args.overwrite)
    if args.no_progress:
        disable_progress()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    from ie_eval.eval.benchmarks import blank_benchmark, limit_benchmark, load_benchmark
    from ie_eval.eval.evaluate import evaluate
    from ie_eval.eval.scorers import ScorerOptions, build_scorer
    from ie_eval.eval.tables import results_markdown

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    options = ScorerOptions(device=device, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                            max_pixels=args.max_pixels, max_length=args.max_length)
    bench = load_benchmark(args.bench, split=args.split, strict=not args.no_strict)
    scorer = build_scorer(args.scorer, options)
    bench = limit_benchmark(bench, args.limit)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.blank_images:
        bench = blank_benchmark(bench, out / "blank.png")
    with PartialRows(out / "predictions.jsonl", resume_identity(args), "sample_id", args.overwrite) as partial:
        results, predictions = evaluate(
            scorer, bench, tie_policy(args, bench.tie_policy), args.bootstrap, args.seed, done=partial.done,
            chunk_size=args.batch_size, on_scored=lambda chunk: partial.append(prediction_row(p, scorer.dims) for p in chunk),
        )
    results["bench"] |= {"split": args.split, "limit": args.limit, "blank_images": args.blank_images}
    write_predictions(predictions, scorer.dims, out / "predictions.jsonl")
    results["plots"] = write_plots(results, out)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(results_markdown(results))
    partial.remove()  # the results are written: a rerun is refused now, not resumed
    print(results_markdown(results))
    log.info("wrote %s", ", ".join(str(out / n) for n in ["results.json", "results.md", *results["plots"]]))
    if args.wandb_project:
        log_to_wandb(args.wandb_project, out, results)
    return 0


def resume_identity(args: argparse.Namespace) -> dict:
    """The arguments that shape the predictions: a partial run under other ones is not resumed.
    (--limit is not one: a rerun with a larger limit scores only the records the first run lacked.)"""
    keys = ("scorer", "bench", "split", "no_strict", "blank_images", "max_new_tokens", "max_pixels", "max_length")
    return {key: getattr(args, key) for key in keys}
