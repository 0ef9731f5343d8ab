"""`ie-eval infer`: the public ReasonEdit interface, a CSV of edits in, the critic's scores (and critique) out.

    ie-eval infer --ckpt runs/sft-tiny/export --mode cot --csv edits.csv --out scored.csv

The input has ReasonEdit's columns `source,edited,instruction` (image paths relative to the CSV's
folder or absolute); the output adds `v_score,e_score,p_score,cot_text` (visual quality, editing
alignment, content preservation). The scores are the regression head's, read at the prefill in
both modes; `--mode cot` also writes the greedy critique (`score_only` leaves `cot_text` empty).
With a `calibration.json` in the export (`ie-eval calibrate`), scores are clip01(slope * raw +
intercept), as ReasonEdit serves them; without one they are the raw head scores.
"""

from __future__ import annotations

import argparse
import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from ie_eval.commands.outputs import add_output_flags, refuse_existing
from ie_eval.data.collate import EditCollator
from ie_eval.data.records import EditRecord
from ie_eval.progress import disable_progress, track

log = logging.getLogger(__name__)

INPUT_COLUMNS: tuple[str, ...] = ("source", "edited", "instruction")
SCORE_COLUMNS: tuple[str, ...] = ("v_score", "e_score", "p_score")  # MOS_DIMS order
MODES: tuple[str, ...] = ("score_only", "cot")


def read_edits(path: Path) -> tuple[list[dict], list[EditRecord]]:
    """The CSV's rows and one EditRecord per row; a bad row is an error naming the file, row and field."""
    if not path.is_file():
        raise SystemExit(f"{path}: input CSV not found")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in INPUT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(f"{path}: missing column(s) {missing}; ReasonEdit's layout is {','.join(INPUT_COLUMNS)}")
        rows = list(reader)
    records = []
    for number, row in enumerate(rows, start=1):
        where = f"{path}:{number}"
        if not (row.get("instruction") or "").strip():
            raise SystemExit(f"{where}: field 'instruction' is empty")
        images = {}
        for field in ("source", "edited"):
            image = Path(row[field] or "")
            image = image if image.is_absolute() else path.parent / image
            if not row[field] or not image.is_file():
                raise SystemExit(f"{where}: field '{field}': image not found: {image}")
            images[field] = image
        records.append(EditRecord(pair_id=f"row-{number}", source_id=f"row-{number}", source_image=images["source"],
                                  edited_image=images["edited"], instruction=row["instruction"]))
    return rows, records


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="ie-eval infer", description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True, help="critic export (CriticModel.save_pretrained)")
    parser.add_argument("--csv", required=True, help="input CSV with source,edited,instruction")
    parser.add_argument("--out", required=True, help="output CSV (adds v_score,e_score,p_score,cot_text)")
    parser.add_argument("--mode", choices=MODES, default="cot")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_output_flags(parser)
    args = parser.parse_args(list(argv))
    refuse_existing([args.out], args.overwrite)
    if args.no_progress:
        disable_progress()

    from ie_eval.data.collate import InputBudget
    from ie_eval.models.calibration import AffineCalibration
    from ie_eval.models.critic import CriticModel

    rows, records = read_edits(Path(args.csv))
    model = CriticModel.from_pretrained(args.ckpt, device=args.device)
    calibration = AffineCalibration.load(args.ckpt)
    mode = "generate" if args.mode == "cot" else "score"
    collator = EditCollator(model.processor, task="critic", mode=mode, prompt_suffix=model.prompt_suffix,
                            critique_format=model.critique_format, **InputBudget.of(model.input_budget).as_dict())
    scores, texts = [], []
    device = next(model.parameters()).device
    for start in track(range(0, len(records), args.batch_size), "critiquing" if args.mode == "cot" else "scoring"):
        batch = collator(records[start : start + args.batch_size])
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        if args.mode == "cot":
            result = model.critique(batch, args.max_new_tokens)
            scores += result.scores.float().cpu().tolist()
            texts += result.texts
        else:
            with torch.inference_mode():
                scores += model(batch).float().cpu().tolist()
            texts += [""] * batch["input_ids"].shape[0]
    if calibration is not None:
        scores = calibration.apply(model.dims, scores)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*INPUT_COLUMNS, *SCORE_COLUMNS, "cot_text"], extrasaction="ignore")
        writer.writeheader()
        for row, values, text in zip(rows, scores, texts, strict=True):
            writer.writerow({**row, **dict(zip(SCORE_COLUMNS, (round(v, 6) for v in values), strict=True)),
                             "cot_text": text})
    print(f"wrote {len(rows)} rows to {out} ({args.mode}, {'calibrated' if calibration else 'raw head scores'})")
    return 0
