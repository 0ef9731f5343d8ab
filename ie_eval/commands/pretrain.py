"""`ie-eval pretrain`: pretrain a tiny backbone on the synthetic world, report what it perceives.

    ie-eval pretrain --config configs/pretrain/tiny.yaml [--preset tiny-qwen3.5-synth] [LightningCLI overrides]

Fits `PretrainModule` on the world stream through LightningCLI, exports a Hugging Face checkpoint
directory, reloads it with `load_backbone(dir)` (the real-checkpoint path), decodes held-out
samples greedily and prints the perception report (with images, blank images, chance). The
report and a provenance file (command, seed, commit, seed streams, task mix) go into the export;
`--preset NAME` also installs the export as the named pretrained preset inside the package.
As `ie-eval fit`, it refuses a run directory an earlier run left checkpoints or an export in
unless `--overwrite`.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PROVENANCE_FILE = "provenance.json"
REPORT_FILE = "perception_report.json"


def git_commit() -> str:
    """HEAD commit of the working tree, "+dirty" when it has uncommitted changes; "unknown" outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty.strip() else "")


def export_dir(trainer) -> Path:
    from ie_eval.lit.callbacks import ExportPretrained

    for callback in trainer.callbacks:
        if isinstance(callback, ExportPretrained):
            return Path(callback.export_path)
    raise ValueError("the pretraining config needs an ie_eval.lit.callbacks.ExportPretrained callback")


def provenance(argv: Sequence[str], cli, report: dict, seconds: float, commit: str) -> dict:
    import torch
    import transformers

    from ie_eval.data.pretrain.tasks import HELDOUT_STREAM, TRAIN_STREAM

    datamodule, trainer = cli.datamodule, cli.trainer
    return {
        "command": "ie-eval pretrain " + " ".join(argv),
        "commit": commit,  # of the code that trained, read before fitting
        "seed": int(datamodule.hparams.seed),
        "seed_streams": {"train": TRAIN_STREAM, "heldout": HELDOUT_STREAM, "benchmark_sources": 0},
        "task_mix": datamodule.mix_dict(),
        "steps": int(trainer.global_step),
        "samples_seen": int(trainer.global_step) * datamodule.samples_per_step(),
        "backbone": cli.model.hparams["backbone"],
        "backbone_kwargs": cli.model.hparams["backbone_kwargs"],
        "optim": cli.model.hparams["optim"],
        "fit_seconds": round(seconds, 1),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch_threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "perception": report,
    }


def install_preset(export: Path, name: str) -> Path:
    """Copy an export into the package's pretrained-preset folder under `name`."""
    from ie_eval.models.backbone import PRETRAINED_PRESETS_DIR

    target = PRETRAINED_PRESETS_DIR / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(export, target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ie-eval pretrain", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report-samples", type=int, default=500, help="held-out samples per task in the perception report")
    parser.add_argument("--preset", default=None, help="also install the export as this pretrained preset name")
    argv = list(sys.argv[1:] if argv is None else argv)
    args, rest = parser.parse_known_args(argv)

    from ie_eval.commands.fit import build_cli
    from ie_eval.eval.perception import perception_report, report_table
    from ie_eval.models.backbone import load_backbone

    commit = git_commit()
    cli = build_cli(rest, run=False)
    started = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    seconds = time.perf_counter() - started
    if not cli.trainer.is_global_zero:
        return 0
    export = export_dir(cli.trainer)
    reloaded = load_backbone(str(export))
    report = perception_report(
        reloaded.model, reloaded.processor, count=args.report_samples, seed=int(cli.datamodule.hparams.seed),
        mix=cli.datamodule.mix, budget=cli.datamodule.budget,
    )
    (export / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    record = provenance(argv, cli, report, seconds, commit)
    (export / PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nperception on {args.report_samples} held-out samples per task (greedy decoding)\n" + report_table(report))
    print(f"\nexport: {export}  (fit {seconds:.0f}s)")
    if args.preset:
        print(f"installed preset {args.preset}: {install_preset(export, args.preset)}")
    return 0
