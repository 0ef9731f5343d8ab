"""LightningCLI for every training stage: `ie-eval fit|validate|test|predict --config ...`.

The model and data classes come from the YAML (`class_path`), so one entry point serves every
stage. Configs compose: a config's top-level `extends: [FILE, ...]` (paths relative to it) are
merged before it, in order, as if each had been passed with `--config` first; nested mappings
merge and lists replace, as with repeated `--config`. Interpolations are resolved once, on the
merged result (jsonargparse's `omegaconf+` mode), so a shared block can write
`${....default_root_dir}/checkpoints` and follow whatever run directory the stage or the command
line sets. `--print_config` shows the fully resolved config.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import yaml
from lightning.pytorch.cli import LightningCLI

EXTENDS_KEY = "extends"


class ConfigChainError(ValueError):
    """A config's `extends` names a missing file or forms a loop."""


def config_chain(path: str | Path, seen: tuple[Path, ...] = ()) -> list[str]:
    """`--config` values equivalent to one config file: its bases first (recursively), then itself.
    A file with `extends` is passed as its YAML text without that key; one without, as its path."""
    path = Path(path)
    resolved = path.resolve()
    if resolved in seen:
        raise ConfigChainError(f"{path}: `extends` loops back to it ({' -> '.join(str(p) for p in (*seen, resolved))})")
    if not path.is_file():
        where = f" (named by `extends` in {seen[-1]})" if seen else ""
        raise ConfigChainError(f"{path}: config file not found{where}")
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(content, dict) or EXTENDS_KEY not in content:
        return [str(path)]
    bases = content.pop(EXTENDS_KEY)
    bases = [bases] if isinstance(bases, str) else list(bases or [])
    chain = [value for base in bases for value in config_chain(path.parent / base, (*seen, resolved))]
    return [*chain, yaml.safe_dump(content, sort_keys=False)]


def expand_configs(args: Sequence[str]) -> list[str]:
    """`args` with every `--config FILE` replaced by its chain (`--config=FILE` too)."""
    expanded: list[str] = []
    items = iter(args)
    for arg in items:
        if arg == "--config" or arg.startswith("--config="):
            value = arg.split("=", 1)[1] if "=" in arg else next(items, None)
            if value is None:
                raise ConfigChainError("--config needs a file")
            looks_like_file = "\n" not in value and value.endswith((".yaml", ".yml", ".json"))
            for part in config_chain(value) if looks_like_file else [value]:
                expanded += ["--config", part]
        else:
            expanded.append(arg)
    return expanded


def build_cli(args: Sequence[str], run: bool = True) -> LightningCLI:
    """LightningCLI with the project's defaults (seeded, composed configs, interpolation after merging);
    `run=False` only parses and instantiates (the drivers that fit themselves: pretrain, demo, grpo)."""
    return LightningCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=expand_configs(args),
        run=run,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "omegaconf+"},
    )
