"""Rollouts: our HF engine (one prefill and vision encoding per prompt, shared by its G samples) against
plain `generate` on the prompt batch repeated G times (what TRL's GRPOTrainer and a user's loop run).

Same prompts (P synthetic edits, two images each), same policy, greedy decoding, G = 8 samples per prompt.
The two paths are checked to produce the same tokens before timing; new tokens/s counts the completion
tokens up to and including the stop token. The paths alternate, `--repeats` times, median kept.

    .venv/bin/python benchmarks/rollouts.py [--presets tiny-qwen3-vl tiny-qwen3.5] [--repeats 3]
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

import torch
import transformers
from model_specs import backbone_spec

from ie_eval.data.collate import EditCollator, model_inputs
from ie_eval.data.readers import read_manifest
from ie_eval.data.synth.benchmark import generate_benchmark
from ie_eval.models.critic import CriticModel
from ie_eval.rl.rollout import SamplingConfig
from ie_eval.rl.rollout.base import completion_mask, multimodal_token_ids
from ie_eval.rl.rollout.hf import HFRolloutEngine

RESULTS = Path(__file__).resolve().parent / "results" / "rollouts.json"
GROUP = 8


def plain_generate(model: CriticModel, records: list, collator, group: int, new_tokens: int):
    """What a user runs: every prompt collated G times (images included), then one `generate`."""
    repeated = collator([record for record in records for _ in range(group)])
    inputs = model_inputs(repeated)
    output = model.backbone.generate(
        **inputs, do_sample=False, max_new_tokens=new_tokens, eos_token_id=model.stop_token_ids,
        pad_token_id=model.pad_token_id, suppress_tokens=multimodal_token_ids(model.processor),
    )
    ids = output[:, inputs["input_ids"].shape[1]:]
    mask, _ = completion_mask(ids, model.stop_token_ids)
    return ids.masked_fill(mask == 0, model.pad_token_id), mask


def timed(fn, sync) -> tuple[float, object]:
    sync()
    start = time.perf_counter()
    result = fn()
    sync()
    return time.perf_counter() - start, result


def measure(preset: str, records: list, pixels: int, new_tokens: int, repeats: int, device: str = "cpu",
            dtype: str = "float32") -> dict:
    torch.manual_seed(0)
    model = CriticModel.build(*backbone_spec(preset, dtype)).to(device).eval()
    collator = EditCollator(model.processor, task="critic", mode="generate", max_pixels=pixels * pixels,
                            min_pixels=pixels * pixels // 2)
    to_device = lambda b: {k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()}  # noqa: E731
    collator_on_device = lambda rs: to_device(collator(rs))  # noqa: E731
    batch = collator_on_device(records)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    engine = HFRolloutEngine(model)
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=new_tokens)
    ours = lambda: engine.generate(batch, GROUP, sampling)  # noqa: E731
    plain = lambda: plain_generate(model, records, collator_on_device, GROUP, new_tokens)  # noqa: E731
    with torch.no_grad():
        reference = ours()
        ids, mask = plain()
        length = min(ids.shape[1], reference.completion_ids.shape[1])
        same = torch.equal(reference.completion_mask[:, :length] * reference.completion_ids[:, :length],
                           mask[:, :length] * ids[:, :length]) and int(mask.sum()) == int(reference.completion_mask.sum())
        if not same:
            raise AssertionError(f"{preset}: the shared-prefill engine and plain generate disagree on greedy tokens")
        times = {"ours": [], "plain": []}
        for _ in range(repeats):
            times["ours"].append(timed(ours, sync)[0])
            times["plain"].append(timed(plain, sync)[0])
    tokens = int(reference.completion_mask.sum())
    prompt_tokens = int(batch["attention_mask"].sum(dim=1).float().mean())
    ours_s, plain_s = statistics.median(times["ours"]), statistics.median(times["plain"])
    return {"preset": preset, "prompts": len(records), "group_size": GROUP, "image_side": pixels,
            "prompt_tokens": prompt_tokens, "max_new_tokens": new_tokens, "new_tokens": tokens,
            "ours_tokens_per_s": tokens / ours_s, "plain_tokens_per_s": tokens / plain_s, "speedup": plain_s / ours_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny-qwen3-vl", "tiny-qwen3.5"])
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--image-sides", type=int, nargs="+", default=[224, 448])
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = generate_benchmark(Path(tmp), n_sources=max(2, args.prompts), seed=0)
        records = list({r.pair_id: r for r in read_manifest(manifest).records}.values())[: args.prompts]
        rows = [measure(preset, records, side, new, args.repeats, args.device, args.dtype)
                for preset in args.presets for side in args.image_sides for new in args.new_tokens]
    print(f"G = {GROUP}, {args.prompts} prompts with two images each, greedy, {args.dtype} on {args.device}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| preset | image side | prompt tokens | max new | ours new tok/s | plain new tok/s | speedup |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['preset']} | {r['image_side']} | {r['prompt_tokens']} | {r['max_new_tokens']} | "
              f"{r['ours_tokens_per_s']:.0f} | {r['plain_tokens_per_s']:.0f} | {r['speedup']:.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "rollouts", "rows": rows, "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "transformers": transformers.__version__},
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
