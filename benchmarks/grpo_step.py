"""A GRPO step: ours (`GRPOModule` on a Lightning Trainer) against TRL's `GRPOTrainer` (no vLLM), same policy,
prompts, group size, lengths, sampling, KL coefficient, learning rate and reward function.

The policy is a critic with random weights (saved once; TRL loads its backbone from the same directory): the
tiny Qwen3-VL preset by default, or `--architecture`, a tiny preset or a real-size one from
`benchmarks/architectures/*.json`. `--device cuda --dtype bfloat16` runs both in bf16 on the GPU (the suite).
The prompts are the synthetic benchmark's edits as our collator writes them (the critic prompt, source and
edited image at `--image-side` px); the reward is the critique-format reward, computed by
`ie_eval.rl.terms.FormatTerm` in both. Before timing, the two are checked to see the same prompt tokens.
Rollouts/s = prompts x G / step wall time, the first `--warmup` steps left out; our split into generate /
score / update comes from the module's own `time/*_s` logs, TRL's from its generation and training timers.

    .venv/bin/python benchmarks/grpo_step.py [--prompts-per-step 2] [--group 8] [--new-tokens 32] [--steps 4]
        [--architecture tiny-qwen3-vl] [--device cpu] [--dtype float32]
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
import transformers
from model_specs import backbone_spec

from ie_eval.data.collate import EditCollator, chat_template_kwargs, fit_to_budget, load_rgb
from ie_eval.data.prompts import critic_prompt
from ie_eval.data.readers import read_manifest
from ie_eval.data.synth.benchmark import generate_benchmark
from ie_eval.models.adapters import AdapterConfig
from ie_eval.models.critic import CriticModel
from ie_eval.models.heads import HeadConfig
from ie_eval.rl.rewards import RewardSample
from ie_eval.rl.terms import FormatTerm

RESULTS = Path(__file__).resolve().parent / "results" / "grpo_step.json"


class StepClock(L.Callback):
    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.split: list[dict[str, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds.append(time.perf_counter() - self.start)
        metrics = trainer.callback_metrics
        self.split.append({k.split("/")[1][:-2]: float(v) for k, v in metrics.items() if k.startswith("time/")})


def ours(policy: Path, manifest: Path, args: argparse.Namespace, root: Path) -> dict:
    from ie_eval.rl.grpo_module import GRPOModule
    from ie_eval.rl.prompt_data import PromptDataModule

    torch.manual_seed(0)
    pixels = args.image_side * args.image_side
    module = GRPOModule(
        policy=str(policy), adapter={"kind": "full"},
        grpo={"group_size": args.group, "beta": 0.04, "aggregation": "token"},
        sampling={"temperature": 1.0, "max_new_tokens": args.new_tokens},
        rewards=[{"name": "format", "weight": 1.0}],
        optim={"lr": 1e-6, "head_lr": 1e-6, "warmup_ratio": 0.0, "min_lr_ratio": 1.0},
        prompts={"max_pixels": pixels, "min_pixels": pixels, "max_length": 4096},
    )
    data = PromptDataModule(str(manifest), prompts_per_step=args.prompts_per_step, mos_ratio=1.0, val_prompts=1)
    clock = StepClock()
    trainer = L.Trainer(accelerator=lightning_accelerator(args.device), precision=lightning_precision(args.dtype),
                        devices=1, max_steps=args.steps, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, default_root_dir=str(root), callbacks=[clock])
    trainer.fit(module, datamodule=data)
    return summary(clock.seconds, clock.split, args)


def lightning_accelerator(device: str) -> str:
    return "gpu" if device.startswith("cuda") else "cpu"


def lightning_precision(dtype: str) -> str:
    """The trainers' common precision: the weights in `dtype` (TRL: loaded in it, bf16 autocast)."""
    return {"float32": "32-true", "bfloat16": "bf16-true"}[dtype]


def trl_dataset(records: list, processor, args: argparse.Namespace):
    from datasets import Dataset

    pixels = args.image_side * args.image_side
    factor = processor.image_processor.patch_size * processor.image_processor.merge_size
    rows = []
    for record in records:
        images = [fit_to_budget(load_rgb(path, record.pair_id, role), factor, pixels, pixels, record.pair_id)
                  for path, role in ((record.source_image, "source"), (record.edited_image, "edited"))]
        rows.append({"prompt": critic_prompt(record.instruction), "images": images})
    return Dataset.from_list(rows)


def format_reward(completions, **_) -> list[float]:
    """The same reward as ours: FormatTerm on the completion texts."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    samples = [RewardSample("", "", "", text) for text in texts]
    return FormatTerm()(samples).tolist()


def trl(policy: Path, records: list, args: argparse.Namespace, root: Path) -> dict:
    from trl import GRPOConfig, GRPOTrainer

    backbone_dir = root / "backbone"
    model = CriticModel.from_pretrained(policy)
    model.backbone.save_pretrained(backbone_dir)
    model.processor.save_pretrained(backbone_dir)
    config = GRPOConfig(
        output_dir=str(root / "trl"), per_device_train_batch_size=args.prompts_per_step * args.group,
        num_generations=args.group, max_completion_length=args.new_tokens, temperature=1.0, beta=0.04,
        learning_rate=1e-6, max_steps=args.steps, logging_steps=1, report_to=[], save_strategy="no",
        use_cpu=lightning_accelerator(args.device) == "cpu", bf16=args.dtype == "bfloat16",
        model_init_kwargs={"dtype": args.dtype}, chat_template_kwargs=chat_template_kwargs(model.processor),
        dataloader_num_workers=0, seed=0, loss_type="grpo",
    )
    trainer = GRPOTrainer(model=str(backbone_dir), reward_funcs=format_reward, args=config,
                          train_dataset=trl_dataset(records, model.processor, args), processing_class=model.processor)

    class Clock(transformers.TrainerCallback):
        seconds: list[float] = []

        def on_step_begin(self, *_, **__):
            self.start = time.perf_counter()

        def on_step_end(self, *_, **__):
            self.seconds.append(time.perf_counter() - self.start)

    clock = Clock()
    trainer.add_callback(clock)
    trainer.train()
    return summary(clock.seconds, [], args)


def summary(seconds: list[float], split: list[dict], args: argparse.Namespace) -> dict:
    timed = seconds[args.warmup:]
    step = statistics.median(timed)
    out = {"steps_timed": len(timed), "step_s": step, "rollouts_per_s": args.prompts_per_step * args.group / step}
    if split:
        out["split_s"] = {k: statistics.median(s[k] for s in split[args.warmup:]) for k in split[-1]}
    return out


def prompt_token_counts(policy: Path, records: list, args: argparse.Namespace) -> tuple[list[int], list[int]]:
    """Prompt lengths as our collator encodes them and as TRL's processor call on its dataset does."""
    model = CriticModel.from_pretrained(policy)
    pixels = args.image_side * args.image_side
    ours_batch = EditCollator(model.processor, task="critic", mode="generate", max_pixels=pixels, min_pixels=pixels,
                              critique_format=model.critique_format)(records)
    dataset = trl_dataset(records, model.processor, args)
    theirs = []
    for row in dataset:
        text = model.processor.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True,
                                                   **chat_template_kwargs(model.processor))
        encoded = model.processor(text=[text], images=row["images"], return_tensors="pt")
        theirs.append(int(encoded["input_ids"].shape[1]))
    return ours_batch["attention_mask"].sum(dim=1).tolist(), theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts-per-step", type=int, default=2)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--image-side", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--architecture", default="tiny-qwen3-vl")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = generate_benchmark(root / "synth", n_sources=8, seed=0)
        records = list({r.pair_id: r for r in read_manifest(manifest).records}.values())
        torch.manual_seed(0)
        preset, backbone_kwargs = backbone_spec(args.architecture, args.dtype)
        critic = CriticModel.build(preset, backbone_kwargs, head=HeadConfig(hidden_size=16, dropout=0.0))
        critic.attach_adapter(AdapterConfig(kind="full"))
        policy = critic.save_pretrained(root / "policy")
        ours_tokens, trl_tokens = prompt_token_counts(policy, records[:4], args)
        assert ours_tokens == trl_tokens, f"prompt tokens differ: ours {ours_tokens}, TRL {trl_tokens}"
        rows = {"ours": ours(policy, manifest, args, root / "ours"), "trl": trl(policy, records, args, root)}
    ratio = rows["ours"]["rollouts_per_s"] / rows["trl"]["rollouts_per_s"]
    print(f"GRPO step: {args.prompts_per_step} prompts x G {args.group}, {args.new_tokens} new tokens, two "
          f"{args.image_side}px images ({ours_tokens[0]} prompt tokens), {args.architecture}, {args.dtype} on {args.device}")
    print("| trainer | step s | rollouts/s | split |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        split = ", ".join(f"{k} {v:.2f}" for k, v in row.get("split_s", {}).items()) or "-"
        print(f"| {name} | {row['step_s']:.2f} | {row['rollouts_per_s']:.2f} | {split} |")
    print(f"ours / TRL rollouts/s: {ratio:.2f}")
    import trl as trl_package

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "grpo_step", "rows": rows, "ratio": ratio, "prompt_tokens": ours_tokens,
        "settings": {k: str(v) for k, v in vars(args).items()},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "transformers": transformers.__version__, "trl": trl_package.__version__},
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
