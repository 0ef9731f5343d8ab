"""`ie-eval calibrate`: fit the affine calibration of a critic's head scores on a validation split.

    ie-eval calibrate --ckpt runs/sft-tiny/export --manifest data/synth/pairs.jsonl --split val

Per dimension, least squares from the head's scores to the MOS percentile Phi(mos) (the manifest's
targets are ECDF-probit), written as `calibration.json` in the export in ReasonEdit's format;
`ie-eval infer` applies it. Prints MSE to the target and SRCC before and after.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from ie_eval.progress import track


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="ie-eval calibrate", description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True, help="critic export (CriticModel.save_pretrained)")
    parser.add_argument("--manifest", required=True, help="records with MOS")
    parser.add_argument("--split", default="val", help="split of the source-disjoint split to fit on")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(list(argv))

    from ie_eval.commands.critique import select_records
    from ie_eval.data.collate import EditCollator, InputBudget
    from ie_eval.data.splits import DEFAULT_RATIOS, DEFAULT_SALT
    from ie_eval.models.calibration import fit_affine
    from ie_eval.models.critic import CriticModel

    model = CriticModel.from_pretrained(args.ckpt, device=args.device)
    records = list({r.pair_id: r for r in select_records(args.manifest, args.split, dict(DEFAULT_RATIOS),
                                                         DEFAULT_SALT) if r.mos is not None}.values())
    if len(records) < 2:
        raise SystemExit(f"{args.manifest} [{args.split}]: {len(records)} record(s) with MOS; calibration needs >= 2")
    collator = EditCollator(model.processor, task="critic", mode="score", prompt_suffix=model.prompt_suffix,
                            critique_format=model.critique_format, **InputBudget.of(model.input_budget).as_dict())
    device = next(model.parameters()).device
    scores = []
    with torch.inference_mode():
        for start in track(range(0, len(records), args.batch_size), "scoring"):
            batch = collator(records[start : start + args.batch_size])
            scores += model({k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}).float().cpu().tolist()
    raw = np.asarray(scores, dtype=np.float64)
    target = stats.norm.cdf(np.asarray([r.mos for r in records], dtype=np.float64))
    calibration = fit_affine(model.dims, raw, target, {"fit_on": f"{args.manifest} [{args.split}]",
                                                      "pairs": len(records), "target": "Phi(mos), ECDF percentile"})
    calibrated = np.asarray(calibration.apply(model.dims, raw.tolist()))
    report = {}
    for index, dim in enumerate(model.dims):
        report[dim] = {
            "mse_raw": float(np.mean((np.clip(raw[:, index], 0, 1) - target[:, index]) ** 2)),
            "mse_calibrated": float(np.mean((calibrated[:, index] - target[:, index]) ** 2)),
            "srcc_raw": float(stats.spearmanr(raw[:, index], target[:, index])[0]),
            "srcc_calibrated": float(stats.spearmanr(calibrated[:, index], target[:, index])[0]),
        }
    calibration.metadata["validation"] = report
    path = calibration.save(Path(args.ckpt))
    print(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return 0
