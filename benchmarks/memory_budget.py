"""Per-GPU memory budget of the paper-scale stages under DDP / ZeRO-2 / ZeRO-3 / FSDP, from parameter counts.

    python benchmarks/memory_budget.py   # prints the table, writes benchmarks/results/memory_budget.json

Parameter counts come from the architecture hyperparameters (`ARCHITECTURES`, in Hugging Face config.json
form; `count_parameters` is checked against instantiated tiny Qwen3.5 models in
tests/benchmarks/test_memory_budget.py), trainable counts from the stage's adapter block. Per GPU:

    M = W / s_w + T * (4 + 4 + 8) / s_t + A
    W   frozen base weights: bf16 2 B/param; NF4 (double quant) 0.516 B/param for the decoder's linear layers,
        the rest upcast to fp32 (4 B) by peft's prepare_model_for_kbit_training
    T   trainable parameters (adapter + regression head), fp32: weight 4 + gradient 4 + AdamW m, v 8 B
    s_w, s_t  sharding factors: DDP 1, 1; ZeRO-2 1, N for the gradient and optimizer state (the fp32
        weight stays whole); ZeRO-3 and FSDP N, N (plus the largest layer gathered whole while it runs)
    A   max(activations (below) + the stage's logits, GRPO's rollout KV cache): never sharded by these strategies

Activations, bytes per token per decoder layer (bf16): each linear layer's input (its LoRA and, without
checkpointing, the next op's backward read it), each norm's and SwiGLU's inputs, flash attention's q, k, v, out:
    full-attention layer:   2 * (4h + 3q + 2kv + 4I)   (q: query width incl. Qwen3.5's output gate, kv: k width)
    linear-attention layer: 2 * (4h + 3c + 2v + 4I)    (c = 2 key + value width of the delta-net input, v: value width)
With gradient checkpointing (the configs' setting) only each layer's input is kept, 2h per token per layer,
and one layer's full activations exist at a time during its recomputation. A frozen part with no trainable
parameter inside (the RM's and GRPO's vision tower) keeps nothing. Logits: 10 B per scored position and vocab
entry (bf16 logits, fp32 log-softmax and its gradient). Not counted: the CUDA context (~0.5 GB), allocator
fragmentation, NCCL buffers (~0.5-1 GB): keep about 15% of the card free.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GB = 1e9

# Qwen3.5 dense checkpoints, the fields of their config.json (text_config / vision_config) that size them.
# These configs are not bundled (only the tiny presets are). 9B: Qwen/Qwen3.5-9B config.json; its text
# fields are also transformers' Qwen3_5TextConfig defaults (vocab 248320, hidden 4096, intermediate 12288,
# 32 layers, 16 q heads / 4 kv heads of 256, delta-net 16 key / 32 value heads of 128, conv kernel 4, a
# full-attention layer every 4th). 4B: Qwen/Qwen3.5-4B config.json (hidden 2560, intermediate 9216, tied
# embeddings, vision tower of 24 x 1024); recalled from the hub card, not verified offline: check with
# `hf download Qwen/Qwen3.5-4B config.json` before relying on the 4B rows to a few percent.
_QWEN35_TEXT = {
    "vocab_size": 248320, "num_hidden_layers": 32, "num_attention_heads": 16, "num_key_value_heads": 4,
    "head_dim": 256, "linear_num_key_heads": 16, "linear_num_value_heads": 32, "linear_key_head_dim": 128,
    "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4,
    "layer_types": ["linear_attention", "linear_attention", "linear_attention", "full_attention"] * 8,
}
_QWEN35_VISION = {"patch_size": 16, "temporal_patch_size": 2, "spatial_merge_size": 2, "in_channels": 3,
                  "num_position_embeddings": 2304, "num_heads": 16}
ARCHITECTURES: dict[str, dict] = {
    "Qwen/Qwen3.5-9B": {
        "tie_word_embeddings": False,
        "text_config": _QWEN35_TEXT | {"hidden_size": 4096, "intermediate_size": 12288},
        "vision_config": _QWEN35_VISION | {"depth": 27, "hidden_size": 1152, "intermediate_size": 4304,
                                           "out_hidden_size": 4096},
    },
    "Qwen/Qwen3.5-4B": {
        "tie_word_embeddings": True,
        "text_config": _QWEN35_TEXT | {"hidden_size": 2560, "intermediate_size": 9216},
        "vision_config": _QWEN35_VISION | {"depth": 24, "hidden_size": 1024, "intermediate_size": 4096,
                                           "out_hidden_size": 2560},
    },
}
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit codes + 8-bit absmax per 64 + fp32 scale per 256 absmax
GPUS = {"4 x 24 GB": (4, 24), "8 x 80 GB": (8, 80)}
STRATEGIES = ("DDP", "ZeRO-2", "ZeRO-3", "FSDP")


# --- parameter counts -----------------------------------------------------------------------------------
def linear_shapes(config: dict) -> list[tuple[str, int, int]]:
    """(module name suffix, fan_in, out_features) of every Linear / Conv in the model, one entry per instance."""
    text, vision = config["text_config"], config["vision_config"]
    h, inter = text["hidden_size"], text["intermediate_size"]
    q = text["num_attention_heads"] * text["head_dim"]
    kv = text["num_key_value_heads"] * text["head_dim"]
    key = text["linear_num_key_heads"] * text["linear_key_head_dim"]
    value = text["linear_num_value_heads"] * text["linear_value_head_dim"]
    shapes = []
    for kind in text["layer_types"]:
        if kind == "full_attention":  # q_proj is twice q wide: query and its output gate
            shapes += [("language.q_proj", h, 2 * q), ("language.k_proj", h, kv), ("language.v_proj", h, kv),
                       ("language.o_proj", q, h)]
        else:
            shapes += [("language.in_proj_qkv", h, 2 * key + value), ("language.in_proj_z", h, value),
                       ("language.in_proj_b", h, text["linear_num_value_heads"]),
                       ("language.in_proj_a", h, text["linear_num_value_heads"]), ("language.out_proj", value, h)]
        shapes += [("language.gate_proj", h, inter), ("language.up_proj", h, inter), ("language.down_proj", inter, h)]
    vh, vi = vision["hidden_size"], vision["intermediate_size"]
    merged = vh * vision["spatial_merge_size"] ** 2
    patch_in = vision["in_channels"] * vision["temporal_patch_size"] * vision["patch_size"] ** 2
    shapes.append(("vision.patch_embed.proj", patch_in, vh))
    for _ in range(vision["depth"]):
        shapes += [("vision.attn.qkv", vh, 3 * vh), ("vision.attn.proj", vh, vh), ("vision.mlp.linear_fc1", vh, vi),
                   ("vision.mlp.linear_fc2", vi, vh)]
    shapes += [("vision.merger.linear_fc1", merged, merged), ("vision.merger.linear_fc2", merged, vision["out_hidden_size"])]
    return shapes


def count_parameters(config: dict) -> dict[str, int]:
    """Parameters of a Qwen3.5 `*ForConditionalGeneration` from its config dict, by part.

    linear: decoder Linear weights (what NF4 quantizes); vision: the whole vision tower and merger;
    embeddings: input embeddings and the LM head (once when tied); other: norms, delta-net conv and gates.
    """
    text, vision = config["text_config"], config["vision_config"]
    h = text["hidden_size"]
    key = text["linear_num_key_heads"] * text["linear_key_head_dim"]
    value = text["linear_num_value_heads"] * text["linear_value_head_dim"]
    shapes = linear_shapes(config)
    linear = sum(i * o for name, i, o in shapes if name.startswith("language."))
    other = h  # final norm
    for kind in text["layer_types"]:
        other += 2 * h  # input and post-attention RMSNorm
        if kind == "full_attention":
            other += 2 * text["head_dim"]  # q_norm, k_norm
        else:  # depthwise conv over q, k, v; dt_bias, A_log per value head; gated RMSNorm over a value head
            other += (2 * key + value) * text["linear_conv_kernel_dim"] + 2 * text["linear_num_value_heads"]
            other += text["linear_value_head_dim"]
    vh = vision["hidden_size"]
    vision_params = sum(i * o + o for name, i, o in shapes if name.startswith("vision."))  # Linear/Conv + bias
    vision_params += vision["num_position_embeddings"] * vh + vision["depth"] * 4 * vh + 2 * vh  # pos, LayerNorms
    embeddings = text["vocab_size"] * h * (1 if config.get("tie_word_embeddings", False) else 2)
    total = linear + other + vision_params + embeddings
    return {"linear": linear, "other": other, "vision": vision_params, "embeddings": embeddings, "total": total}


def adapter_parameters(config: dict, adapter: dict) -> int:
    """Trainable adapter parameters: LoRA r (fan_in + out) per targeted module; AdaLoRA init_r (fan_in + out + 1)
    (its singular values E). Targets as `ie_eval.models.adapters.target_module_regex` matches them."""
    from ie_eval.models.adapters import LANGUAGE_PROJECTIONS, VISION_PROJECTIONS

    targets = set(adapter.get("target_modules", LANGUAGE_PROJECTIONS))
    vision = set(VISION_PROJECTIONS) if adapter.get("include_vision", False) else set()
    adalora = adapter["kind"] == "adalora"
    r = adapter.get("adalora_init_r", 12) if adalora else adapter.get("r", 16)
    total = 0
    for name, fan_in, out in linear_shapes(config):
        part, module = name.split(".", 1)
        if (part == "language" and module in targets) or (part == "vision" and module in vision):
            total += r * (fan_in + out) + (r if adalora else 0)
    return total


def head_parameters(in_features: int, hidden_size: int, num_outputs: int) -> int:
    """MultiHeadRegressor: LayerNorm, then per output Linear(in, hidden) -> Linear(hidden, 1)."""
    return 2 * in_features + num_outputs * (in_features * hidden_size + hidden_size + hidden_size + 1)


# --- activations ----------------------------------------------------------------------------------------
def layer_activation_bytes(config: dict, kind: str) -> int:
    """Bytes saved for backward per token in one decoder layer without checkpointing (module docstring)."""
    text = config["text_config"]
    h, inter = text["hidden_size"], text["intermediate_size"]
    if kind == "full_attention":
        q = 2 * text["num_attention_heads"] * text["head_dim"]
        kv = text["num_key_value_heads"] * text["head_dim"]
        return 2 * (4 * h + 3 * q + 2 * kv + 4 * inter)
    conv = 2 * text["linear_num_key_heads"] * text["linear_key_head_dim"] + (
        value := text["linear_num_value_heads"] * text["linear_value_head_dim"])
    return 2 * (4 * h + 3 * conv + 2 * value + 4 * inter)


def vision_block_bytes(config: dict) -> int:
    vision = config["vision_config"]
    vh = vision["hidden_size"]
    return 2 * (4 * vh + 3 * vh + 2 * vh + 4 * vision["intermediate_size"])


def activation_bytes(config: dict, sequences: int, tokens: int, images: int, image_pixels: int, checkpointing: bool,
                     vision_trains: bool) -> float:
    """Activation bytes of one forward+backward over `sequences` x `tokens` (plus their images' patches)."""
    text, vision = config["text_config"], config["vision_config"]
    layers = text["layer_types"]
    per_layer = [layer_activation_bytes(config, kind) for kind in layers]
    n = sequences * tokens
    total = n * (2 * text["hidden_size"] * len(layers) + max(per_layer)) if checkpointing else n * sum(per_layer)
    if vision_trains:
        patches = sequences * images * image_pixels // vision["patch_size"] ** 2
        block = vision_block_bytes(config)
        depth = vision["depth"]
        total += patches * (2 * vision["hidden_size"] * depth + block if checkpointing else block * depth)
    return float(total)


# --- stages ---------------------------------------------------------------------------------------------
@dataclass
class Stage:
    name: str
    config: str
    backbone: str
    adapter: dict
    quantized: bool
    head_hidden: int
    num_outputs: int
    sequences: int  # sequences per forward/backward on one rank
    tokens: int  # tokens per sequence
    images: int
    image_pixels: int
    logit_positions: int  # positions per sequence whose full-vocab logits the loss reads
    checkpointing: bool
    kv_cache_sequences: int = 0  # GRPO rollout: sequences generated at once on one rank
    note: str = ""


def load_stage_config(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))


def paper_stages() -> list[Stage]:
    """The three paper-scale stages, read from their configs (per-rank micro-batch: the overlays' 2 for RM/SFT)."""
    rm = load_stage_config("configs/rm/qwen3.5-4b.yaml")
    sft = load_stage_config("configs/sft/qwen3.5-9b.yaml")
    grpo = load_stage_config("configs/grpo/qwen3.5-9b.yaml")
    rm_model, rm_data = rm["model"]["init_args"], rm["data"]["init_args"]
    sft_model, sft_data = sft["model"]["init_args"], sft["data"]["init_args"]
    grpo_model, grpo_data = grpo["model"]["init_args"], grpo["data"]["init_args"]
    rollout = grpo_data["prompts_per_step"] * grpo_model["grpo"]["group_size"]
    completion = grpo_model["sampling"]["max_new_tokens"]
    micro = grpo_model["grpo"].get("logprob_micro_batch") or rollout
    grpo_common = dict(
        config="configs/grpo/qwen3.5-9b.yaml", backbone="Qwen/Qwen3.5-9B", adapter=grpo_model["adapter"],
        quantized=grpo_model["adapter"]["kind"] == "qlora", head_hidden=sft_model["head"]["hidden_size"],
        num_outputs=4, tokens=1024 + completion, images=2, image_pixels=sft_data["max_pixels"],
        logit_positions=completion, checkpointing=True, kv_cache_sequences=rollout,
    )
    return [
        Stage("RE-Reward", "configs/rm/qwen3.5-4b.yaml", rm_model["backbone"], rm_model["adapter"],
              rm_model["adapter"]["kind"] == "qlora", rm_model["head"]["hidden_size"], 3,
              sequences=2, tokens=rm_data["max_length"], images=2, image_pixels=rm_data["max_pixels"],
              logit_positions=0, checkpointing=rm_model["backbone_kwargs"]["gradient_checkpointing"],
              note="AdaLoRA: refused under ZeRO-3 / FSDP"),
        Stage("Critic SFT", "configs/sft/qwen3.5-9b.yaml", sft_model["backbone"], sft_model["adapter"],
              sft_model["adapter"]["kind"] == "qlora", sft_model["head"]["hidden_size"], 4,
              sequences=2, tokens=sft_data["max_length"], images=2, image_pixels=sft_data["max_pixels"],
              logit_positions=sft_model["generation"]["max_new_tokens"],
              checkpointing=sft_model["backbone_kwargs"]["gradient_checkpointing"],
              note="NF4 base: not sharded by ZeRO-3 / FSDP"),
        Stage(f"GRPO (logprob micro-batch {micro})", sequences=micro,
              note="the config's logprob_micro_batch: null scores all rollouts at once", **grpo_common),
        Stage("GRPO (logprob micro-batch 4)", sequences=4, note="grpo.logprob_micro_batch: 4", **grpo_common),
    ]


def stage_terms(stage: Stage) -> dict[str, float]:
    """The stage's W (frozen weight bytes), T (trainable params) and A (activation bytes) on one rank."""
    arch = ARCHITECTURES[stage.backbone]
    counts = count_parameters(arch)
    h = arch["text_config"]["hidden_size"]
    trainable = adapter_parameters(arch, stage.adapter) + head_parameters(h, stage.head_hidden, stage.num_outputs)
    if stage.quantized:
        weights = counts["linear"] * NF4_BYTES + (counts["total"] - counts["linear"]) * 4
    else:
        weights = counts["total"] * 2
    vision_trains = stage.adapter.get("include_vision", False)
    activations = activation_bytes(arch, stage.sequences, stage.tokens, stage.images, stage.image_pixels,
                                   stage.checkpointing, vision_trains)
    logits = stage.sequences * stage.logit_positions * arch["text_config"]["vocab_size"] * 10
    kv_cache = stage.kv_cache_sequences * stage.tokens * rollout_cache_bytes_per_token(arch)
    kv_cache += stage.kv_cache_sequences * delta_net_state_bytes(arch)
    largest_layer = max(i * o for _, i, o in linear_shapes(arch)) * 7 * 2  # ~ one decoder layer, bf16, gathered
    return {"parameters": counts["total"], "trainable": trainable, "weights": weights, "activations": activations,
            "logits": float(logits), "kv_cache": float(kv_cache), "gathered_layer": float(largest_layer)}


def rollout_cache_bytes_per_token(config: dict) -> int:
    """KV cache per generated or prompt token: k and v of every full-attention layer, bf16."""
    text = config["text_config"]
    full = sum(1 for kind in text["layer_types"] if kind == "full_attention")
    return full * 2 * text["num_key_value_heads"] * text["head_dim"] * 2


def delta_net_state_bytes(config: dict) -> int:
    """Recurrent state per sequence of the linear-attention layers (fp32 key x value per head, plus the conv window)."""
    text = config["text_config"]
    linear = sum(1 for kind in text["layer_types"] if kind == "linear_attention")
    state = text["linear_num_value_heads"] * text["linear_key_head_dim"] * text["linear_value_head_dim"] * 4
    conv = (2 * text["linear_num_key_heads"] * text["linear_key_head_dim"]
            + text["linear_num_value_heads"] * text["linear_value_head_dim"]) * text["linear_conv_kernel_dim"] * 2
    return linear * (state + conv)


def per_gpu_bytes(terms: dict[str, float], strategy: str, ranks: int) -> float:
    """M = W / s_w + T (4 + 4 + 8) / s_t + A (module docstring); ZeRO-2 keeps the fp32 weight whole."""
    trainable = terms["trainable"]
    if strategy == "DDP":
        states = trainable * 16
        weights = terms["weights"]
    elif strategy == "ZeRO-2":
        states = trainable * 4 + trainable * 12 / ranks
        weights = terms["weights"]
    else:  # ZeRO-3, FSDP: everything sharded, one layer gathered while it runs
        states = trainable * 16 / ranks
        weights = terms["weights"] / ranks + terms["gathered_layer"]
    # The rollout's KV cache is freed before the update's forward/backward: the peak is the larger of the two.
    return weights + states + max(terms["activations"] + terms["logits"], terms["kv_cache"])


def supported(stage: Stage, strategy: str) -> bool:
    if strategy in ("ZeRO-3", "FSDP"):
        return stage.adapter["kind"] not in ("adalora", "qlora")
    return True


def budget() -> dict:
    rows = []
    for stage in paper_stages():
        terms = stage_terms(stage)
        cells = {}
        for label, (ranks, capacity) in GPUS.items():
            for strategy in STRATEGIES:
                total = per_gpu_bytes(terms, strategy, ranks)
                cells[f"{label} {strategy}"] = {
                    "gb": round(total / GB, 1), "fits": total <= 0.85 * capacity * GB,
                    "supported": supported(stage, strategy),
                }
        rows.append({"stage": stage.name, "stage_config": asdict(stage),
                     "terms_gb": {k: (round(v / GB, 2) if k not in ("parameters", "trainable") else int(v))
                                  for k, v in terms.items()}, "per_gpu": cells})
    architectures = {name: count_parameters(arch) for name, arch in ARCHITECTURES.items()}
    return {"architectures": architectures, "rows": rows, "usable_fraction": 0.85}


def table(result: dict) -> str:
    columns = [f"{label} {strategy}" for label in GPUS for strategy in STRATEGIES]
    lines = ["| stage | params | trainable | W GB | A GB | " + " | ".join(columns) + " |",
             "|---" * (5 + len(columns)) + "|"]
    for row in result["rows"]:
        t = row["terms_gb"]
        cells = []
        for column in columns:
            cell = row["per_gpu"][column]
            mark = "" if cell["supported"] else " (n/a)"
            cells.append(f"{cell['gb']:.1f}{' ok' if cell['fits'] else ' OOM'}{mark}")
        lines.append(f"| {row['stage']} | {t['parameters'] / 1e9:.2f} B | {t['trainable'] / 1e6:.1f} M | {t['weights']:.1f} | "
                     f"{max(t['activations'] + t['logits'], t['kv_cache']):.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    result = budget()
    print(table(result))
    for name, counts in result["architectures"].items():
        print(f"{name}: {counts['total'] / 1e9:.3f} B parameters ({counts['vision'] / 1e6:.0f} M vision)")
    out = ROOT / "benchmarks" / "results" / "memory_budget.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
