"""`ie-eval ablate`: run a grid of config overlays x seeds, then tabulate test SRCC as mean +- std.

    ie-eval ablate --grid experiments/ablate.yaml --out runs/ablate [--doc docs/ablations.md]

The grid file names the base configs, the seeds and one list of overlays per variant:

    base: [configs/rm/tiny.yaml, experiments/ablate_base.yaml]
    seeds: [0, 1, 2]
    variants:
      pooling=prefill: [experiments/rm_pooling_prefill.yaml]
      critic pooling=mean: {base: [configs/sft/tiny.yaml, experiments/ablate_sft_base.yaml],
                            overlays: [experiments/critic_pooling_mean.yaml]}

A variant is a list of overlays on the grid's base, or a mapping with its own `base` and `overlays`.

Every run is a LightningCLI `fit` then `test` on its best checkpoint, in-process, one after another.
A finished run leaves `metrics.json` in its folder and is skipped when the grid is run again, so an
interrupted grid resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from ie_eval.data.records import CRITIQUE_DIMS, MOS_DIMS

COLUMNS = ("mean_srcc", "format_rate")


def variant_configs(grid: dict, name: str) -> list[str]:
    """Base configs then overlays of one variant, in LightningCLI order."""
    spec = grid["variants"][name]
    if isinstance(spec, dict):
        return [*spec.get("base", grid["base"]), *(spec.get("overlays") or [])]
    return [*grid["base"], *(spec or [])]


def load_grid(path: str | Path) -> dict:
    grid = yaml.safe_load(Path(path).read_text())
    problems = [key for key in ("base", "seeds", "variants") if key not in (grid or {})]
    if problems:
        raise ValueError(f"{path}: grid file lacks {problems}; see `ie-eval ablate --help`")
    for name in grid["variants"]:
        for config in variant_configs(grid, name):
            if not Path(config).is_file():
                raise FileNotFoundError(f"{path}: variant '{name}': overlay not found: {config}")
    return grid


def run_one(configs: Sequence[str], seed: int, run_dir: Path, extra: Sequence[str]) -> dict[str, float]:
    """fit + test of one variant and seed; returns the test metrics (also written to run_dir/metrics.json)."""
    from ie_eval.commands.fit import build_cli

    args = [arg for config in configs for arg in ("--config", config)]
    # A run directory without metrics.json is an unfinished attempt, redone from the start: with a base config
    # that puts checkpoints at a fixed dirpath, the fit would otherwise refuse it.
    args += ["--seed_everything", str(seed), "--trainer.default_root_dir", str(run_dir), "--overwrite", *extra]
    started = time.perf_counter()
    cli = build_cli(args, run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    has_best = any(getattr(c, "best_model_path", "") for c in cli.trainer.checkpoint_callbacks)
    results = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best" if has_best else None,
                               verbose=False)
    metrics = {k.removeprefix("test/"): float(v) for block in results for k, v in block.items()}
    metrics["wall_s"] = round(time.perf_counter() - started, 1)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def summarize(values: list[float]) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def variant_dims(runs: list[dict[str, float]]) -> tuple[str, ...]:
    """Critique dims for RE-Reward runs, MOS dims for critic runs (by which SRCC keys were logged)."""
    return MOS_DIMS if any(f"{MOS_DIMS[0]}_srcc" in m for m in runs) else CRITIQUE_DIMS


def ablation_table(results: dict[str, list[dict[str, float]]]) -> str:
    """Markdown, one table per dim set (RE-Reward rows, critic rows): mean ± std over seeds of mean SRCC,
    per-dim SRCC and format stability."""
    tables = []
    for dims in (CRITIQUE_DIMS, MOS_DIMS):
        rows = {name: runs for name, runs in results.items() if variant_dims(runs) == dims}
        if not rows:
            continue
        header = ["variant", "seeds", "mean SRCC", *[f"{d} SRCC" for d in dims], "format stability"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for name, runs in rows.items():
            cells = [name, str(len(runs)), summarize([m["mean_srcc"] for m in runs if "mean_srcc" in m])]
            cells += [summarize([m[f"{d}_srcc"] for m in runs if f"{d}_srcc" in m]) for d in dims]
            cells.append(summarize([m["format_rate"] for m in runs if "format_rate" in m]))
            lines.append("| " + " | ".join(cells) + " |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def run_grid(grid_path: str, out: Path, extra: Sequence[str]) -> dict[str, list[dict[str, float]]]:
    grid = load_grid(grid_path)
    results: dict[str, list[dict[str, float]]] = {}
    for name in grid["variants"]:
        results[name] = []
        for seed in grid["seeds"]:
            run_dir = out / re.sub(r"[^A-Za-z0-9_.+-]+", "-", name).strip("-") / f"seed{seed}"
            done = run_dir / "metrics.json"
            if done.is_file():
                metrics = json.loads(done.read_text())
            else:
                run_dir.mkdir(parents=True, exist_ok=True)
                metrics = run_one(variant_configs(grid, name), int(seed), run_dir, extra)
            print(f"{name} seed {seed}: mean SRCC {metrics.get('mean_srcc', float('nan')):.3f} "
                  f"({metrics.get('wall_s', 0):.0f} s)", flush=True)
            results[name].append(metrics)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ie-eval ablate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", default="experiments/ablate.yaml", help="grid file (base configs, seeds, variants)")
    parser.add_argument("--out", default="runs/ablate", help="one folder per variant and seed")
    parser.add_argument("--doc", help="also write the table, with the command that made it, to this markdown file")
    known, extra = parser.parse_known_args(argv)
    out = Path(known.out)
    started = time.perf_counter()
    results = run_grid(known.grid, out, extra)
    table = ablation_table(results)
    minutes = (time.perf_counter() - started) / 60
    (out / "ablations.json").write_text(json.dumps(results, indent=2))
    (out / "ablations.md").write_text(table + "\n")
    print(table)
    print(f"grid finished in {minutes:.1f} min; {out / 'ablations.md'}")
    if known.doc:
        command = " ".join(["ie-eval ablate", *(argv if argv is not None else [])]).strip()
        Path(known.doc).write_text(
            f"# Ablations\n\nProduced by `{command}` (`make ablate`) on the synthetic benchmark, "
            f"{len(next(iter(results.values()), []))} seeds per variant, test split, in {minutes:.1f} min "
            f"on the machine that ran it.\n\nRM rows: SRCC of RE-Reward's critique scores (logicality, accuracy, "
            f"usefulness). Critic rows: SRCC of the regression head's MOS scores; format stability is the share "
            f"of greedy test critiques that parse.\n\n{table}\n"
        )
    return 0
