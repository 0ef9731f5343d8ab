"""GRPO steps with RE-Reward served over HTTP: scoring after generation (serial) against scoring each chunk
of prompts while the next generates (`grpo.overlap_scoring_prompts`), same policy, prompts and seeds.

The reward model runs in its own `serve-rm` process with one torch thread, as it would on its own GPU or
machine; the trainer gets one torch thread too, so the two do not share a core. `sampling.seed` is set,
and before timing the per-step rewards of the two modes are checked to agree. Step time is the median over
steps after the first, over `--rounds` alternating runs of each mode.

    .venv/bin/python benchmarks/reward_overlap.py [--prompts-per-step 4] [--group 4] [--new-tokens 16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from serve_rm import build_tiny_checkpoint, free_port, start_server

from ie_eval.data.synth.benchmark import generate_benchmark
from ie_eval.models.adapters import AdapterConfig
from ie_eval.models.critic import CriticModel
from ie_eval.models.heads import HeadConfig
from ie_eval.serve.runner import wait_healthy

RESULTS = Path(__file__).resolve().parent / "results" / "reward_overlap.json"


class StepLog(L.Callback):
    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("time/", "train/reward"))}
        self.rows.append({"step_s": time.perf_counter() - self.start, **metrics})


def run(policy: Path, manifest: Path, url: str, args: argparse.Namespace, overlap: int | None, root: Path) -> list:
    from ie_eval.rl.grpo_module import GRPOModule
    from ie_eval.rl.prompt_data import PromptDataModule

    torch.manual_seed(0)
    pixels = args.image_side**2
    module = GRPOModule(
        policy=str(policy), adapter={"kind": "full"},
        grpo={"group_size": args.group, "beta": 0.04, "overlap_scoring_prompts": overlap},
        sampling={"temperature": 1.0, "max_new_tokens": args.new_tokens, "seed": 7},
        rewards=[{"name": "re_reward", "weight": 1.0}, {"name": "format", "weight": 0.2}],
        reward_source={"url": url, "timeout_s": 120.0, "deadline_s": 300.0},
        optim={"lr": 1e-6, "head_lr": 1e-6, "warmup_ratio": 0.0, "min_lr_ratio": 1.0},
        prompts={"max_pixels": pixels, "min_pixels": pixels, "max_length": 4096},
    )
    data = PromptDataModule(str(manifest), prompts_per_step=args.prompts_per_step, mos_ratio=1.0, val_prompts=1)
    log = StepLog()
    trainer = L.Trainer(accelerator="cpu", max_steps=args.steps, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, default_root_dir=str(root), callbacks=[log])
    trainer.fit(module, datamodule=data)
    return log.rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts-per-step", type=int, default=4)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--image-side", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=1, help="prompts per generation chunk when overlapping")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = generate_benchmark(root / "synth", n_sources=max(8, args.prompts_per_step * args.steps), seed=0)
        torch.manual_seed(0)
        critic = CriticModel.build("tiny-qwen3-vl", {"dtype": "float32", "seed": 0}, head=HeadConfig(hidden_size=16))
        critic.attach_adapter(AdapterConfig(kind="full"))
        policy = critic.save_pretrained(root / "policy")
        port = free_port()
        server = start_server(build_tiny_checkpoint(root, seed=1), {"max_batch_size": 32, "max_wait_ms": 2.0}, root,
                              port)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, server)
            runs: dict[str, list] = {"serial": [], "overlapped": []}
            for round_index in range(args.rounds):
                for mode, overlap in (("serial", None), ("overlapped", args.chunk)):
                    runs[mode].append(run(policy, manifest, url, args, overlap, root / f"{mode}{round_index}"))
        finally:
            server.terminate()
            server.wait(timeout=30)
    for serial, overlapped in zip(runs["serial"], runs["overlapped"], strict=True):
        for a, b in zip(serial, overlapped, strict=True):
            assert abs(a["train/reward_mean"] - b["train/reward_mean"]) < 1e-4, (a, b)
    rows = {}
    for mode, mode_runs in runs.items():
        steps = [row for rows_ in mode_runs for row in rows_[1:]]
        rows[mode] = {"step_s": statistics.median(r["step_s"] for r in steps),
                      "split_s": {k: statistics.median(r[f"time/{k}_s"] for r in steps) for k in ("generate", "score",
                                                                                                   "update")}}
        rows[mode]["rollouts_per_s"] = args.prompts_per_step * args.group / rows[mode]["step_s"]
    speedup = rows["serial"]["step_s"] / rows["overlapped"]["step_s"]
    print(f"GRPO with RE-Reward over HTTP (serve-rm, 1 thread); {args.prompts_per_step} prompts x G = {args.group}, "
          f"{args.new_tokens} new tokens, overlap chunk {args.chunk} prompt(s); rewards agree per step")
    print("| mode | step s | rollouts/s | generate / score / update s |")
    print("|---|---|---|---|")
    for mode, row in rows.items():
        split = row["split_s"]
        print(f"| {mode} | {row['step_s']:.2f} | {row['rollouts_per_s']:.1f} | {split['generate']:.2f} / "
              f"{split['score']:.2f} / {split['update']:.2f} |")
    print(f"overlapped / serial rollouts/s: {speedup:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "reward_overlap", "rows": rows, "speedup": speedup,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
    }, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
