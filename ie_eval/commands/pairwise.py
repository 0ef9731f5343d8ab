"""`ie-eval pairwise`: train the pairwise preference reward model (EditReward's objective), then judge it.

Fits `configs/pairwise/tiny.yaml` (or `--config`) on the synthetic benchmark's pairwise view (made
if absent), and on the held-out test pairs, from sources never trained on, prints side by side
the pairwise accuracy of the model's fused mu and of SSIM(source, edit), plus the model's sigma of
the score difference on the closer and the wider half of the pairs by truth gap. Writes
`<out>/pairwise_results.json`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

DEFAULT_CONFIG = "configs/pairwise/tiny.yaml"


def pair_metrics(pairs: Sequence, mu: dict[str, float], sigma: dict[str, float] | None = None) -> dict[str, float]:
    """`PairwiseMetrics` (accuracy, sigma by truth gap) of per-edit scores on the pairs; sigma None: a scorer
    without one (its sigma entries are then meaningless and dropped)."""
    import torch

    from ie_eval.metrics.pairwise import PairwiseMetrics

    sides = [(p.first.sample_id, p.second.sample_id) for p in pairs]
    metric = PairwiseMetrics()
    metric.update(
        torch.tensor([[mu[a], mu[b]] for a, b in sides]),
        torch.tensor([[sigma[a], sigma[b]] for a, b in sides]).log() if sigma else torch.zeros(len(sides), 2),
        torch.tensor([p.label for p in pairs]),
        torch.tensor([math.nan if p.truth_gap is None else p.truth_gap for p in pairs]),
    )
    out = {k: float(v) for k, v in metric.compute().items()}
    return out if sigma else {"pair_accuracy": out["pair_accuracy"], "pairs": out["pairs"]}


def main(argv: Sequence[str] | None = None) -> int:
    from ie_eval.commands.demo import synth_run_parser

    parser = synth_run_parser("ie-eval pairwise", __doc__, DEFAULT_CONFIG, "data/synth-pairwise", 600,
                              "runs/pairwise-tiny")
    args = parser.parse_args(argv)

    import torch

    from ie_eval.commands.fit import build_cli
    from ie_eval.data.synth.benchmark import generate_benchmark
    from ie_eval.eval.model_scorers import PairwiseCheckpointScorer
    from ie_eval.eval.scorer_base import ScorerOptions
    from ie_eval.eval.scorers import FullReferenceScorer
    from ie_eval.models.heads import fuse_gaussian_heads

    started = time.perf_counter()
    out, data = Path(args.out), Path(args.data)
    if not (data / "pairs.jsonl").exists():
        generate_benchmark(data, n_sources=args.n_sources, seed=args.seed)
    out.mkdir(parents=True, exist_ok=True)
    overlay_path = out / "pairwise_overlay.yaml"
    overlay = {"trainer": {"default_root_dir": str(out)}, "data": {"init_args": {"sources": [f"synth:{data}"]}}}
    overlay_path.write_text(yaml.safe_dump(overlay))
    configs = [arg for path in (args.config or [DEFAULT_CONFIG]) for arg in ("--config", path)]
    cli = build_cli([*configs, "--config", str(overlay_path)], run=False, overwrite=args.overwrite)
    trainer, module, datamodule = cli.trainer, cli.model, cli.datamodule
    trainer.fit(module, datamodule=datamodule)
    tested = trainer.test(module, datamodule=datamodule, ckpt_path="best")[0]

    pairs = datamodule.splits["test"]
    records = list({r.sample_id: r for p in pairs for r in (p.first, p.second)}.values())
    options = ScorerOptions(device="cpu", batch_size=32)
    model = PairwiseCheckpointScorer(str(out / "export"), options)
    output = model.score(records)
    mu = torch.tensor(output.scores)
    log_sigma = torch.tensor(output.info["sigma"]).log()
    fused_mu, fused_log_sigma = fuse_gaussian_heads(mu, log_sigma, model.model.fusion)
    ids = [r.sample_id for r in records]
    model_score = dict(zip(ids, fused_mu.tolist(), strict=True))
    model_sigma = dict(zip(ids, fused_log_sigma.exp().tolist(), strict=True))
    ssim = FullReferenceScorer("ssim", options).score(records)
    ssim_score = {i: s[0] for i, s in zip(ids, ssim.scores, strict=True)}

    decisive = sum(p.label != 0.5 for p in pairs)
    model_metrics, ssim_metrics = pair_metrics(pairs, model_score, model_sigma), pair_metrics(pairs, ssim_score)
    gaps = sorted(p.truth_gap for p in pairs if p.truth_gap is not None and p.label != 0.5)
    summary = {
        "test_pairs": decisive,
        "test_sources": len({p.first.source_id for p in pairs}),
        "accuracy": {"pairwise reward model (mu)": model_metrics["pair_accuracy"],
                     "SSIM(source, edit)": ssim_metrics["pair_accuracy"]},
        "sigma": {"sigma_small_gap": model_metrics.get("sigma_small_gap", math.nan),
                  "sigma_large_gap": model_metrics.get("sigma_large_gap", math.nan),
                  "median_gap": gaps[len(gaps) // 2] if gaps else math.nan},
        "test_metrics": tested,
        "seconds": time.perf_counter() - started,
        "export": str(out / "export"),
    }
    (out / "pairwise_results.json").write_text(json.dumps(summary, indent=2))
    print(f"\nHeld-out synthetic test pairs ({decisive} pairs from {summary['test_sources']} unseen sources)")
    print("| scorer | pairwise accuracy |\n|---|---|")
    for name, value in summary["accuracy"].items():
        print(f"| {name} | {value:.3f} |")
    sigma = summary["sigma"]
    print(f"\nsigma of the score difference: {sigma['sigma_small_gap']:.3f} on the closer half of the pairs "
          f"(truth gap < {sigma['median_gap']:.3f}), {sigma['sigma_large_gap']:.3f} on the wider half")
    print(f"exported model: {out / 'export'}\ntotal time: {summary['seconds']:.0f}s")
    return 0
