"""`ie-eval report RUN_DIR... --out DIR`: several runs side by side, as in the paper's tables.

A RUN_DIR is an `ie-eval eval` output (results.json, predictions.jsonl) and/or a training run
with a Lightning CSVLogger `metrics.csv` (found in the dir or below it; the newest wins). Writes
DIR/report.md with:

- one comparison table per dimension set (MOS dims, critique dims): SRCC / KRCC / PLCC per dim;
- a pairwise / K-way table for runs that have preference results;
- srcc_by_scorer.png (SRCC per dim and scorer), scatter_<run>.png per run;
- for RL runs, rl_curves_<run>.png: reward and response length against step
  (`train/reward_mean`, `train/response_length`; `val/...` when logged).

Anything missing (no results.json, no metrics.csv, a key not logged) skips that part with a note.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from ie_eval.data.records import CRITIQUE_DIMS, MOS_DIMS, OVERALL_DIMS

# Curve title -> metrics.csv keys, first present wins (x = the `step` column).
RL_CURVES: dict[str, tuple[str, ...]] = {
    "reward (train)": ("train/reward_mean", "reward"),
    "response length (train)": ("train/response_length",),
    "reward (val)": ("val/reward_mean",),
    "response length (val)": ("val/response_length",),
}


def run_label(path: Path, taken: set[str]) -> str:
    """Short unique label: the dir name, then parent/name when names repeat."""
    label = path.name or str(path)
    if label in taken:
        label = f"{path.parent.name}/{path.name}"
    while label in taken:
        label += "'"
    taken.add(label)
    return label


def find_metrics_csv(run_dir: Path) -> Path | None:
    candidates = [run_dir / "metrics.csv"] if (run_dir / "metrics.csv").is_file() else list(run_dir.rglob("metrics.csv"))
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def read_curves(path: Path) -> dict[str, tuple[list[float], list[float]]]:
    """{key: (steps, values)} of every column of a CSVLogger file (empty cells skipped)."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for index, row in enumerate(csv.DictReader(handle)):
            step = _number(row.get("step"))
            for key, cell in row.items():
                value = _number(cell)
                if key in (None, "step", "epoch") or value is None:
                    continue
                steps, values = out.setdefault(key, ([], []))
                steps.append(step if step is not None else float(index))
                values.append(value)
    return out


def _number(cell: str | None) -> float | None:
    try:
        value = float(cell)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def rl_section(label: str, metrics_csv: Path, out: Path) -> list[str]:
    """Markdown lines for one run's RL curves; writes rl_curves_<label>.png when any curve exists."""
    from ie_eval.eval.plots import curves_plot

    curves = read_curves(metrics_csv)
    series, missing = {}, []
    for title, keys in RL_CURVES.items():
        key = next((k for k in keys if k in curves), None)
        if key is None:
            missing.append(f"{title} ({' / '.join(keys)})")
        else:
            series[f"{title}: {key}"] = curves[key]
    lines = [f"### {label}: training curves", "", f"from `{metrics_csv}`", ""]
    if series:
        name = f"rl_curves_{_safe(label)}.png"
        curves_plot(series, out / name, f"{label}: RL training curves")
        lines += [f"![{label} curves]({name})", ""]
    if missing:
        lines += [f"not logged, skipped: {', '.join(missing)}", ""]
    return lines


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def dims_of(results: Mapping) -> tuple[str, ...]:
    dims = tuple(results["scorer"]["dims"])
    return MOS_DIMS if set(dims) <= set(MOS_DIMS) or dims == OVERALL_DIMS else CRITIQUE_DIMS


def evaluation_sections(runs: Mapping[str, Mapping], run_dirs: Mapping[str, Path], out: Path) -> list[str]:
    """Comparison tables and the SRCC / scatter PNGs of the runs that have results.json."""
    from ie_eval.eval.plots import grouped_bars, scatter_plot
    from ie_eval.eval.predictions import read_predictions
    from ie_eval.eval.tables import comparison_table, peer_comparison, preference_comparison

    lines: list[str] = []
    for dims, title in ((MOS_DIMS, "edit quality (MOS dims)"), (CRITIQUE_DIMS, "critique quality (RE-Reward dims)")):
        subset = {label: r for label, r in runs.items() if dims_of(r) == dims}
        if not subset:
            continue
        benches = sorted({r["bench"]["spec"] + (f" [{r['bench']['split']}]" if r["bench"].get("split") else "")
                          for r in subset.values()})
        lines += [f"## Pointwise: {title}", "", f"benchmark(s): {', '.join(f'`{b}`' for b in benches)}", "",
                  comparison_table(subset, dims), ""]
        srcc = {d: {label: _srcc(r, d) for label, r in subset.items()} for d in [*dims, "mean"]}
        name = f"srcc_by_scorer_{'mos' if dims == MOS_DIMS else 'critique'}.png"
        grouped_bars(srcc, out / name, f"SRCC by scorer: {title}", "SRCC")
        lines += [f"![SRCC by scorer]({name})", ""]
        per_task = task_mean_srcc(subset, dims)
        if per_task:
            name = f"task_srcc_{'mos' if dims == MOS_DIMS else 'critique'}.png"
            grouped_bars(per_task, out / name, f"mean SRCC per task type: {title}", "mean SRCC over dims")
            lines += [f"![SRCC per task type]({name})", ""]
    if any(r.get("preference") and r["preference"].get("overall") for r in runs.values()):
        lines += ["## Pairwise / K-way accuracy (overall truth)", "", preference_comparison(runs), ""]
    if any(r.get("peer") for r in runs.values()):
        lines += ["## Ours beside the peers' metrics (docs/evaluation.md)", "",
                  "The same predictions under each paper's definition, on the overall score (mean of the scorer's dims).",
                  "", peer_comparison(runs), ""]
    for label, path in run_dirs.items():
        predictions = path / "predictions.jsonl"
        if label not in runs or not predictions.is_file():
            continue
        dims, preds, truths = read_predictions(predictions)
        if len(preds) < 2:
            lines += [f"{label}: fewer than 2 scored items, no scatter plot", ""]
            continue
        name = f"scatter_{_safe(label)}.png"
        scatter_plot(preds, truths, dims, out / name, f"{label}: prediction vs truth")
        lines += [f"![{label} scatter]({name})", ""]
    return lines


def task_mean_srcc(runs: Mapping[str, Mapping], dims: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """{task type: {run: mean over the run's dims of its per-task SRCC}} (None where a run has no value)."""
    table: dict[str, dict[str, float | None]] = {}
    for label, results in runs.items():
        for task, row in ((results.get("pointwise") or {}).get("per_task_srcc") or {}).items():
            values = [row[d] for d in dims if isinstance(row.get(d), (int, float))]
            table.setdefault(task, {})[label] = sum(values) / len(values) if values else None
    for task in table:
        for label in runs:
            table[task].setdefault(label, None)
    return dict(sorted(table.items()))


def _srcc(results: Mapping, dim: str) -> float | None:
    metrics = (results.get("pointwise") or {}).get("metrics") or {}
    return metrics.get(dim, {}).get("srcc", {}).get("value")


def build_report(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Write out/report.md (+ PNGs) for `run_dirs`; returns the report path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    dirs = {run_label(Path(d), taken): Path(d) for d in run_dirs}
    runs, notes, rl_lines = {}, [], []
    for label, path in dirs.items():
        if not path.is_dir():
            notes.append(f"{label}: not a directory ({path}), skipped")
            continue
        results_path = path / "results.json"
        if results_path.is_file():
            runs[label] = json.loads(results_path.read_text())
        metrics_csv = find_metrics_csv(path)
        if metrics_csv is not None:
            rl_lines += rl_section(label, metrics_csv, out)
        if not results_path.is_file() and metrics_csv is None:
            notes.append(f"{label}: neither results.json nor metrics.csv in {path}, skipped")
    lines = ["# Evaluation report", "", "| run | directory | scorer | benchmark |", "|---|---|---|---|"]
    for label, path in dirs.items():
        r = runs.get(label)
        scorer, bench = (f"`{r['scorer']['spec']}`", f"`{r['bench']['spec']}`") if r else ("–", "–")
        lines.append(f"| {label} | `{path}` | {scorer} | {bench} |")
    lines += [""] + evaluation_sections(runs, dirs, out)
    if rl_lines:
        lines += ["## RL runs", "", *rl_lines]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    report = out / "report.md"
    report.write_text("\n".join(lines).rstrip() + "\n")
    return report
