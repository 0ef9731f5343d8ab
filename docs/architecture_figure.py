"""Draws docs/img/architecture.png: how a record flows from manifest to loss, and how a GRPO step
flows from prompt to update. Each box names the module that does the step.

    .venv/bin/python docs/architecture_figure.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).parent / "img" / "architecture.png"

# (title, module) per box, left to right.
RECORD_PATH = [
    ("manifest row", "data/readers.py"),
    ("EditRecord", "data/records.py"),
    ("split + sampler", "data/splits.py\ndata/sampler.py"),
    ("chat prompt\n+ images", "data/prompts.py\ndata/collate.py"),
    ("Qwen-VL\n+ adapter", "models/backbone.py\nmodels/adapters.py"),
    ("pooled state", "models/pooling.py"),
    ("MLP heads", "models/heads.py"),
    ("loss", "losses/composite.py\nlosses/sft.py"),
]
GRPO_STEP = [
    ("prompts\n(7:3 MOS:pure)", "rl/prompt_data.py"),
    ("G critiques\nper prompt", "rl/rollout/hf.py\nrl/rollout/vllm.py"),
    ("reward terms", "rl/rewards.py\nrl/terms.py"),
    ("RE-Reward", "serve/scoring.py\n(or serve/client.py)"),
    ("group\nadvantages", "losses/grpo.py"),
    ("clip + KL\n+ aux Huber", "losses/grpo.py\nrollout/logprobs.py"),
    ("optimizer step", "rl/grpo_module.py"),
]


def draw_row(ax, boxes, y: float, colour: str, label: str, driver: str) -> None:
    width, gap = 1.75, 0.3
    ax.text(0.0, y + 0.78, label, fontsize=12, fontweight="bold", va="bottom")
    ax.text(0.0, y + 0.62, driver, fontsize=8.5, color="#555555", va="bottom")
    for i, (title, module) in enumerate(boxes):
        x = i * (width + gap)
        ax.add_patch(FancyBboxPatch((x, y - 0.45), width, 0.95, boxstyle="round,pad=0.03", fc=colour, ec="#333333"))
        ax.text(x + width / 2, y + 0.2, title, ha="center", va="center", fontsize=8.5, fontweight="bold")
        ax.text(x + width / 2, y - 0.25, module, ha="center", va="center", fontsize=7.5, family="monospace")
        if i:
            ax.add_patch(FancyArrowPatch((x - gap + 0.02, y), (x - 0.02, y), arrowstyle="-|>", mutation_scale=12))


def main() -> Path:
    fig, ax = plt.subplots(figsize=(16, 4.6))
    draw_row(ax, RECORD_PATH, 3.0, "#dbe9f6", "A record: manifest to loss (RE-Reward, critic SFT, pretraining)",
             "lit/reward_module.py, lit/sft_module.py, lit/pretrain_module.py compose these; commands/fit.py runs them")
    draw_row(ax, GRPO_STEP, 1.0, "#e7f3e1", "A GRPO step: prompt to update",
             "rl/grpo_module.py: training_step = collate -> sample -> score -> advantages -> update_policy")
    ax.set_xlim(-0.2, len(RECORD_PATH) * 2.05)
    ax.set_ylim(0.4, 4.1)
    ax.axis("off")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return OUT


if __name__ == "__main__":
    print(main())
