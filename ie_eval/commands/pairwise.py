"""`ie-eval pairwise`: train the pairwise preference reward model (EditReward's objective), then judge it.

Fits `configs/pairwise/tiny.yaml` (or `--config`) on the synthetic benchmark's pairwise view (made
if absent), and on the held-out test pairs, from sources never trained on, prints side by side
the pairwise accuracy of the model's fused mu and of SSIM(source, edit), plus the model's sigma of
the score difference on the closer and the wider half of the pairs by truth gap. Writes
`<out>/pairwise_results.json`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

DEFAULT_CONFIG = "configs/pairwise/tiny.yaml"


def pair_accuracy(pairs: Sequence, score: dict[str, float]) -> float:
    """Share of decisive pairs whose preferred edit scores higher (0.5 for equal scores)."""
    credit = []
    for pair in pairs:
        if pair.label == 0.5:
            continue
        delta = score[pair.preferred.sample_id] - score[pair.rejected.sample_id]
        credit.append(1.0 if delta > 0 else 0.5 if delta == 0 else 0.0)
    return sum(credit) / max(len(credit), 1)


def sigma_by_gap(pairs: Sequence, sigma: dict[str, float]) -> dict[str, float]:
    """Mean sqrt(sigma_A^2 + sigma_B^2) on the closer and the wider half of the pairs by truth gap."""
    rows = sorted((p.truth_gap, (sigma[p.first.sample_id] ** 2 + sigma[p.second.sample_id] ** 2) ** 0.5)
                  for p in pairs if p.truth_gap is not None and p.label != 0.5)
    half = len(rows) // 2
    small, large = rows[:half], rows[half:]
    return {
        "sigma_small_gap": sum(s for _, s in small) / max(len(small), 1),
        "sigma_large_gap": sum(s for _, s in large) / max(len(large), 1),
        "median_gap": rows[half][0] if rows else float("nan"),
    }


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
    cli = build_cli([*configs, "--config", str(overlay_path)], run=False)
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
    summary = {
        "test_pairs": decisive,
        "test_sources": len({p.first.source_id for p in pairs}),
        "accuracy": {"pairwise reward model (mu)": pair_accuracy(pairs, model_score),
                     "SSIM(source, edit)": pair_accuracy(pairs, ssim_score)},
        "sigma": sigma_by_gap(pairs, model_sigma),
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
