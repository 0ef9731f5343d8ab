#!/usr/bin/env bash
# One prepared GPU run of the performance benchmarks on real-size architectures with random weights
# (benchmarks/architectures/*.json; nothing downloaded). Target: under 8 minutes on one H200.
#   bash benchmarks/gpu_suite.sh [OUT_DIR]      (default benchmarks/results/gpu)
# Needs torch with CUDA, transformers, peft (the GPU image has them). What that image lacks comes as the
# wheels of benchmarks/gpu_wheels.txt, fetched beforehand by benchmarks/gpu_wheels.sh into .whl/ and
# installed here first when .whl/ holds any. Each step has its own time limit, so one slow benchmark
# cannot take the others' time; a step that fails is reported and the rest run. On the device tool (at most
# 8 files come back, so the results travel as one archive): carry [".whl"] and run
#   bash benchmarks/gpu_suite.sh /tmp/gpu; tar czf "$OUT/gpu.tgz" -C /tmp gpu
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/results/gpu}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
# fla's Triton kernels autotune on first use; keep the results on disk so later steps reuse them.
export TRITON_CACHE_AUTOTUNING=1
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_site .whl/*.whl \
    || { echo "installing the wheels in .whl/ failed" >&2; exit 1; }
  export PYTHONPATH="/tmp/gpu_site:$PYTHONPATH"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
  >> "$OUT/gpu.txt" 2>&1
# Which of the optional kernels transformers' Qwen3.5 layers will find (without fla: its slow PyTorch loop).
"$PY" - >> "$OUT/gpu.txt" 2>&1 <<'PYEOF'
import importlib.metadata as md
for name in ("flash-linear-attention", "causal-conv1d", "flash-attn", "trl"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "not installed")
PYEOF

step() {  # step NAME SECONDS COMMAND...
  local name="$1" limit="$2"; shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  echo "$name: exit $? after $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
}

# CE at the 9B's width and Qwen3.5's vocabulary, 8k critique tokens: chunked vs the plain logits (peak memory).
step linear_ce 60 "$PY" benchmarks/linear_ce.py --device cuda --dtype bfloat16 --tokens 8192 --hidden 4096 \
  --vocab 248320 --chunk 2048 --repeats 5 --out "$OUT/linear_ce.json"
# Score-only on the 9B architecture: two 512 x 512 images per sample; distinct edits, then 8 critiques per edit.
step score_only 150 "$PY" benchmarks/score_only.py --device cuda --dtype bfloat16 --architectures qwen3.5-9b \
  --image-side 512 --samples 32 --batch-size 8 --repeats 2 --critiques-per-edit 1 8 --out "$OUT/score_only.json"
# Rollouts at G = 8 on the 4B architecture: shared prefill vs plain generate on repeated prompts.
step rollouts 120 "$PY" benchmarks/rollouts.py --device cuda --dtype bfloat16 --presets qwen3.5-4b \
  --prompts 4 --image-sides 512 --new-tokens 32 128 --repeats 2 --out "$OUT/rollouts.json"
# SFT LoRA step on the 4B architecture, two 512 px images per sample: ours vs the plain HF labels step.
step sft_step 90 "$PY" benchmarks/sft_step.py --device cuda --dtype bfloat16 --architecture qwen3.5-4b \
  --adapter lora --batch 4 --image-side 512 --repeats 3 --out "$OUT/sft_step.json"
# A GRPO step on the 0.8B architecture (full fine-tuning, bf16): ours against TRL's GRPOTrainer (TRL from .whl/).
step grpo_step 60 "$PY" benchmarks/grpo_step.py --device cuda --dtype bfloat16 --architecture qwen3.5-0.8b \
  --prompts-per-step 2 --group 8 --new-tokens 64 --image-side 512 --steps 4 --warmup 1 --out "$OUT/grpo_step.json"
cat "$OUT/summary.txt"
