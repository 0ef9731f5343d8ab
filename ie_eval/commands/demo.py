"""`ie-eval demo`: synthesize data, train tiny RE-Reward on CPU, test it, plot it.

Prints the test correlation table, the same table with both images blanked (the vision-path
check), writes a prediction-vs-truth scatter PNG and leaves a W&B offline run, all under
`--out` (default runs/demo). An earlier run's checkpoints or export in `--out` stop it unless `--overwrite`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import yaml
from PIL import Image

from ie_eval.data.datamodule import blank_images
from ie_eval.data.records import CRITIQUE_DIMS
from ie_eval.data.synth.ceiling import ceiling_of_records

DEFAULT_CONFIG = "configs/rm/tiny.yaml"


def run_overlay(out: Path, manifest: Path, max_epochs: int | None) -> dict:
    """Config overlay that puts every artifact of the run under `out` (the configs derive their
    checkpoint, export and log folders from `trainer.default_root_dir`)."""
    overlay: dict = {"trainer": {"default_root_dir": str(out)}, "data": {"init_args": {"manifest": str(manifest)}}}
    if max_epochs is not None:
        overlay["trainer"]["max_epochs"] = max_epochs
    return overlay


def correlation_table(rows: dict[str, dict[str, float]], ceiling: dict[str, float] | None = None) -> str:
    """Markdown table: one row per condition, SRCC per dim and the mean SRCC / PLCC / KRCC; last, the
    noise ceiling of the same split (SRCC of construction truth vs target: what a perfect model reaches)."""
    header = "| condition | " + " | ".join(f"{d} SRCC" for d in CRITIQUE_DIMS) + " | mean SRCC | mean PLCC | mean KRCC |"
    lines = [header, "|" + "---|" * (len(CRITIQUE_DIMS) + 4)]
    for name, m in rows.items():
        cells = [f"{m[f'test/{d}_srcc']:.3f}" for d in CRITIQUE_DIMS]
        cells += [f"{m['test/mean_srcc']:.3f}", f"{m['test/mean_plcc']:.3f}", f"{m['test/mean_krcc']:.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if ceiling:
        values = [ceiling[d] for d in CRITIQUE_DIMS]
        cells = [f"{v:.3f}" for v in values] + [f"{sum(values) / len(values):.3f}", "–", "–"]
        lines.append("| noise ceiling (truth vs target) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scatter_plot(predictions: list[dict], path: Path) -> Path:
    """Prediction vs truth per dimension on the test split (the evaluation suite's scatter)."""
    import torch

    from ie_eval.eval.plots import scatter_plot as draw

    scores = torch.cat([p["scores"] for p in predictions]).numpy()
    targets = torch.cat([p["target"] for p in predictions]).numpy()
    return draw(scores, targets, CRITIQUE_DIMS, path, "RE-Reward (tiny, synthetic test split): prediction vs target")


def synth_run_parser(prog: str, description: str | None, config: str, data: str, n_sources: int, out: str):
    """The arguments of a driver that trains one stage on a synthetic benchmark it makes if absent."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", action="append", help=f"config, repeatable for overlays (default {config})")
    parser.add_argument("--data", default=data, help="synthetic benchmark dir (made if absent)")
    parser.add_argument("--n-sources", type=int, default=n_sources)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=out)
    parser.add_argument("--overwrite", action="store_true", help="train over an earlier run's checkpoints and export in --out")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = synth_run_parser("ie-eval demo", __doc__, DEFAULT_CONFIG, "data/synth", 160, "runs/demo")
    parser.add_argument("--max-epochs", type=int, default=None)
    args = parser.parse_args(argv)

    from ie_eval.commands.fit import build_cli
    from ie_eval.data.synth.benchmark import generate_benchmark

    started = time.perf_counter()
    out, data = Path(args.out), Path(args.data)
    manifest = data / "manifest.jsonl"
    if not manifest.exists():
        generate_benchmark(data, n_sources=args.n_sources, seed=args.seed)
    out.mkdir(parents=True, exist_ok=True)
    overlay_path = out / "demo_overlay.yaml"
    overlay_path.write_text(yaml.safe_dump(run_overlay(out, manifest, args.max_epochs)))

    configs = [arg for path in (args.config or [DEFAULT_CONFIG]) for arg in ("--config", path)]
    cli = build_cli([*configs, "--config", str(overlay_path)], run=False, overwrite=args.overwrite)
    trainer, module, datamodule = cli.trainer, cli.model, cli.datamodule
    trainer.fit(module, datamodule=datamodule)
    results = {"normal images": trainer.test(module, datamodule=datamodule, ckpt_path="best")[0]}
    predictions = trainer.predict(module, datamodule=datamodule, ckpt_path="best")

    blank = out / "blank.png"
    Image.new("RGB", (64, 64), (128, 128, 128)).save(blank)
    test_records = datamodule.splits["test"]
    datamodule.splits["test"] = blank_images(test_records, blank)
    results["blank images"] = trainer.test(module, datamodule=datamodule, ckpt_path="best")[0]

    plot = scatter_plot(predictions, out / "scatter.png")
    ceiling = ceiling_of_records(test_records, "critique_scores")
    table = correlation_table(results, ceiling)
    drop = results["normal images"]["test/accuracy_srcc"] - results["blank images"]["test/accuracy_srcc"]
    summary = {
        "results": results, "accuracy_srcc_drop_with_blank_images": drop, "noise_ceiling": ceiling,
        "seconds": time.perf_counter() - started, "plot": str(plot),
        "export": str(out / "export"), "best_checkpoint": trainer.checkpoint_callback.best_model_path,
    }
    (out / "demo_results.json").write_text(json.dumps(summary, indent=2))
    print("\nRE-Reward, source-disjoint synthetic test split\n" + table)
    print(f"\naccuracy SRCC drop with blank images: {drop:.3f}")
    print(f"scatter plot: {plot}\nexported model: {out / 'export'}\ntotal time: {summary['seconds']:.0f}s")
    return 0
