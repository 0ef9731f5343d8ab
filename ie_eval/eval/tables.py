"""Markdown tables of results.json: one run (`results.md`) or several side by side (`ie-eval report`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ie_eval.data.records import MOS_DIMS, OVERALL_DIMS


def fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(cells: Sequence[str]) -> list[str]:
    return [_row(cells), "|" + "---|" * len(cells)]


def pointwise_table(results: Mapping) -> str:
    """Rows dim + mean, columns SRCC / KRCC / PLCC each with its bootstrap 95% interval, and the
    noise ceiling's SRCC per dim where the benchmark knows its truth."""
    metrics = results["pointwise"]["metrics"]
    ceiling = results.get("noise_ceiling") or {}
    columns = [f"{c.upper()} [95% CI]" for c in ("srcc", "krcc", "plcc")]
    lines = _header(["dimension", *columns, *(["noise ceiling SRCC"] if ceiling else [])])
    for key, by_corr in metrics.items():
        cells = [f"{fmt(by_corr[c]['value'])} [{fmt(by_corr[c]['low'])}, {fmt(by_corr[c]['high'])}]"
                 for c in ("srcc", "krcc", "plcc")]
        if ceiling:
            values = [v for v in ceiling.values() if v is not None]
            level = ceiling.get(key) if key != "mean" else (sum(values) / len(values) if values else None)
            cells.append(fmt(level))
        lines.append(_row([f"**{key}**" if key == "mean" else key, *cells]))
    return "\n".join(lines)


def task_table(per_task: Mapping[str, Mapping], dims: Sequence[str]) -> str:
    lines = _header(["task type", "n", *[f"{d} SRCC" for d in dims]])
    for task, row in per_task.items():
        lines.append(_row([task, str(row["n"]), *[fmt(row.get(d)) for d in dims]]))
    return "\n".join(lines)


def preference_table(preference: Mapping) -> str:
    """Rows overall + per dim, columns pairwise accuracy, group accuracy per K and overall (in %)."""
    blocks = {"overall (mean of dims)": preference["overall"], **preference["per_dim"]}
    ks = sorted({k for b in blocks.values() if b for k in b["group_accuracy"] if k != "overall"})
    lines = _header(["truth", "pairwise acc. %", "pairs", "tie tol.", *[f"group acc. {k} %" for k in ks],
                     "group acc. overall %", "groups"])
    for name, block in blocks.items():
        if block is None:
            continue
        groups = block["group_accuracy"]
        lines.append(_row([
            name, pct(block["pairwise_accuracy"]), str(block["n_pairs"]), fmt(block["tolerance"], 4),
            *[pct(groups[k]["accuracy"]) if k in groups else "–" for k in ks],
            pct(groups["overall"]["accuracy"]), str(groups["overall"]["n_groups"]),
        ]))
    return "\n".join(lines)


def peer_table(peer: Mapping) -> str:
    """The peers' metrics of one run, one row each: metric, value, whose definition."""
    rows = []
    pointwise = peer.get("pointwise") or {}
    critic = pointwise.get("ie_critic_r1") or {}
    for rule in ("dropped", "counted"):
        scores = critic.get(rule) or {}
        if scores:
            rows.append((f"MainScore, parse failures {rule}", scores["main_score"], "IE-Critic-R1"))
            rows.append((f"logistic PLCC, parse failures {rule}", scores["plcc"], "IE-Critic-R1"))
    if critic:
        rows.append(("parse failures", critic["parse_failures"], "IE-Critic-R1 (dropped)"))
    if pointwise.get("imagenhub"):
        rows.append(("per-prompt SRCC", pointwise["imagenhub"]["per_prompt_srcc"], "EditReward (ImagenHub)"))
    preference = peer.get("preference") or {}
    for key, value in (preference.get("editreward") or {}).items():
        if key.endswith("accuracy"):
            rows.append((f"{key.replace('_', ' ')}", value, "EditReward"))
    if (preference.get("editscore") or {}).get("average") is not None:
        rows.append(("strict accuracy, task-type macro mean", preference["editscore"]["average"], "EditScore"))
    lines = _header(["metric", "value", "definition of"])
    for name, value, source in rows:
        lines.append(_row([name, str(value) if isinstance(value, int) else fmt(value), source]))
    return "\n".join(lines)


def results_markdown(results: Mapping) -> str:
    """The whole results.md of one `ie-eval eval` run."""
    scorer, bench = results["scorer"], results["bench"]
    lines = [f"# `{scorer['spec']}` on `{bench['spec']}`", ""]
    lines.append(f"split: {bench.get('split') or 'all'}; limit: {bench.get('limit') or 'none'}; "
                 f"scored {results['timing']['scored_records']} records in {results['timing']['score_seconds']} s")
    pointwise = results.get("pointwise")
    if pointwise:
        lines += ["", "## Pointwise", "",
                  f"{pointwise['n_scored']} of {pointwise['n_items']} items scored; parse failures: "
                  f"{pointwise['parse_failures']} ({pct(pointwise['parse_failure_rate'])} %)", ""]
        if pointwise["metrics"]:
            lines += [pointwise_table(results), ""]
            if pointwise["per_task_srcc"]:
                lines += ["### SRCC per task type", "", task_table(pointwise["per_task_srcc"], scorer["dims"]), ""]
        else:
            lines += [pointwise.get("note", "no correlations"), ""]
    generation = results.get("generation") or {}
    if generation.get("factuality") is not None:
        lines += ["", f"critique factuality: {pct(generation['factuality'])} % of checkable claims true of the edited "
                  f"image ({generation['factuality_n']} critiques; unverifiable claims "
                  f"{pct(generation.get('unverifiable_claims'))} %)", ""]
    preference = results.get("preference")
    if preference:
        lines += ["", "## Pairwise / K-way", "",
                  f"{preference['n_groups']} groups, {preference['excluded_groups']} excluded (unscored candidate); "
                  f"tie policy {preference['tie_policy']}", ""]
        lines += [preference_table(preference) if preference["overall"] else preference.get("note", ""), ""]
    peer = results.get("peer") or {}
    if peer.get("pointwise") or peer.get("preference"):
        lines += ["", "## The peers' metrics (docs/evaluation.md)", "", peer_table(peer), ""]
    return "\n".join(lines).rstrip() + "\n"


def comparison_table(runs: Mapping[str, Mapping], dims: Sequence[str]) -> str:
    """Paper-table layout: one row per scorer, SRCC / KRCC / PLCC per dim, then the means."""
    header = ["scorer", *[f"{d} {c.upper()}" for d in dims for c in ("srcc", "krcc", "plcc")],
              "mean SRCC", "mean PLCC", "parse fail %", "n"]
    lines = _header(header)
    for label, results in runs.items():
        pointwise = results.get("pointwise") or {}
        metrics = pointwise.get("metrics") or {}
        cells = [fmt(metrics.get(d, {}).get(c, {}).get("value")) for d in dims for c in ("srcc", "krcc", "plcc")]
        means = [fmt(metrics.get("mean", {}).get(c, {}).get("value")) for c in ("srcc", "plcc")]
        lines.append(_row([label, *cells, *means, pct(pointwise.get("parse_failure_rate")),
                           str(pointwise.get("n_scored", 0))]))
    return "\n".join(lines)


def peer_comparison(runs: Mapping[str, Mapping]) -> str:
    """One row per scorer: our headline numbers beside the peers' (same predictions, their definitions)."""
    header = ["scorer", "truth", "mean SRCC (ours)", "mean PLCC (ours)", "MainScore, failures dropped",
              "MainScore, failures counted", "logistic PLCC", "parse failures", "per-prompt SRCC",
              "EditReward 2-way %", "EditReward overall %", "EditScore strict %"]
    lines = _header(header)
    for label, results in runs.items():
        pointwise = results.get("pointwise") or {}
        metrics = pointwise.get("metrics") or {}
        peer = results.get("peer") or {}
        critic = (peer.get("pointwise") or {}).get("ie_critic_r1") or {}
        dropped, counted = critic.get("dropped") or {}, critic.get("counted") or {}
        imagenhub = (peer.get("pointwise") or {}).get("imagenhub") or {}
        editreward = (peer.get("preference") or {}).get("editreward") or {}
        editscore = (peer.get("preference") or {}).get("editscore") or {}
        dims = tuple(results["scorer"]["dims"])
        truth = "MOS" if set(dims) <= set(MOS_DIMS) else "overall MOS" if dims == OVERALL_DIMS else "critique scores"
        lines.append(_row([
            label, truth, fmt(metrics.get("mean", {}).get("srcc", {}).get("value")),
            fmt(metrics.get("mean", {}).get("plcc", {}).get("value")), fmt(dropped.get("main_score")),
            fmt(counted.get("main_score")), fmt(dropped.get("plcc")), str(critic.get("parse_failures", "–")),
            fmt(imagenhub.get("per_prompt_srcc")), pct(editreward.get("k2_accuracy")),
            pct(editreward.get("overall_accuracy")), pct(editscore.get("average")),
        ]))
    return "\n".join(lines)


def preference_comparison(runs: Mapping[str, Mapping]) -> str:
    """One row per scorer: pairwise accuracy and group accuracy per K / overall on the overall truth."""
    blocks = {label: r["preference"]["overall"] for label, r in runs.items()
              if r.get("preference") and r["preference"].get("overall")}
    ks = sorted({k for b in blocks.values() for k in b["group_accuracy"] if k != "overall"})
    lines = _header(["scorer", "pairwise acc. %", *[f"{k} %" for k in ks], "overall groups %"])
    for label, block in blocks.items():
        groups = block["group_accuracy"]
        lines.append(_row([label, pct(block["pairwise_accuracy"]),
                           *[pct(groups[k]["accuracy"]) if k in groups else "–" for k in ks],
                           pct(groups["overall"]["accuracy"])]))
    return "\n".join(lines)

