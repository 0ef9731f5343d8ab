"""LightningCLI for every training stage: `ie-eval fit|validate|test|predict --config ...`.

The model and data classes come from the YAML (`class_path`), so one entry point serves
RE-Reward, the critic's SFT and GRPO.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
from lightning.pytorch.cli import LightningCLI


def build_cli(args: Sequence[str], run: bool = True) -> LightningCLI:
    """LightningCLI with the project's defaults (seeded, omegaconf interpolation); `run=False` only parses
    and instantiates (the drivers that fit themselves: pretrain, demo, grpo)."""
    return LightningCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=list(args),
        run=run,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "omegaconf"},
    )
