"""LightningCLI for every training stage: `ie-eval fit|validate|test|predict --config ...`.

The model and data classes come from the YAML (`class_path`), so one entry point serves every
stage. Configs compose: a config's top-level `extends: [FILE, ...]` (paths relative to it) are
merged before it, in order, as if each had been passed with `--config` first; nested mappings
merge and lists replace, as with repeated `--config`. Interpolations are resolved once, on the
merged result (jsonargparse's `omegaconf+` mode), so a shared block can write
`${....default_root_dir}/checkpoints` and follow whatever run directory the stage or the command
line sets. `--print_config` shows the fully resolved config.

`fit` refuses to train into a run directory an earlier run left checkpoints or an export in
(they would be mixed with, or replaced by, the new run's): `--overwrite` trains over it, and
resuming from a checkpoint (`--ckpt_path`) is not an overwrite.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from ie_eval.commands.outputs import OVERWRITE_FLAG, OutputExistsError

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


def previous_run(config) -> list[Path]:
    """What an earlier run left where a fit with `config` (a parsed, not instantiated, LightningCLI
    config) writes: a checkpoint in a ModelCheckpoint folder (`<default_root_dir>/checkpoints`
    without one, as Lightning does without a logger), and every non-empty ExportPretrained folder."""
    from ie_eval.lit.callbacks import ExportPretrained

    root = Path(config.trainer.get("default_root_dir") or ".")
    callbacks = config.trainer.get("callbacks") or []
    checkpoint_dirs, export_dirs = [root / "checkpoints"], []
    for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
        if not hasattr(callback, "class_path"):
            continue
        module, _, name = callback.class_path.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        dirpath = (callback.get("init_args") or {}).get("dirpath")
        if issubclass(cls, ModelCheckpoint) and dirpath:
            checkpoint_dirs.append(Path(dirpath))
        elif issubclass(cls, ExportPretrained):
            export_dirs.append(Path(dirpath or root / "export"))
    checkpoints = [min(d.glob("*.ckpt"), default=None) for d in dict.fromkeys(checkpoint_dirs)]
    return [c for c in checkpoints if c] + [d for d in export_dirs if d.is_dir() and any(d.iterdir())]


class RunDirectoryCLI(LightningCLI):
    """LightningCLI whose `fit` (and the drivers that fit, `run=False`) refuses an earlier run's directory
    (`previous_run`) unless told to overwrite or resuming; the check runs on the parsed config, before
    any model is built."""

    def __init__(self, *args, overwrite: bool = False, resume: bool = False, **kwargs) -> None:
        self.overwrite, self.resume = overwrite, resume
        super().__init__(*args, **kwargs)

    def _parse_ckpt_path(self) -> None:
        """Resume restores state from the checkpoint; the run's configuration is the one given (--config).

        LightningCLI would re-parse the checkpoint's hyperparameters as the model's config, but ours
        are the stage's own record (`hyperparameters()`), not a class_path / init_args block, so the
        parse fails on the first nested key; the configs a resume passes are those of the run."""

    def before_instantiate_classes(self) -> None:
        if self.subcommand not in (None, "fit"):
            return  # validate / test / predict read a run; they write no checkpoints
        config = self.config[self.subcommand] if self.subcommand else self.config
        if self.overwrite or self.resume or config.get("ckpt_path"):
            return
        found = previous_run(config)
        if found:
            root = config.trainer.get("default_root_dir") or "."
            raise OutputExistsError(
                f"{root}: an earlier run left {', '.join(map(str, found))}; pass {OVERWRITE_FLAG} to train over "
                "it, resume it from a checkpoint (--ckpt_path; ie-eval grpo/gcpo: --ckpt-path), or choose another "
                "run directory (--trainer.default_root_dir; ie-eval demo/pairwise: --out)"
            )


def build_cli(args: Sequence[str], run: bool = True, *, overwrite: bool = False, resume: bool = False) -> LightningCLI:
    """LightningCLI with the project's defaults (seeded, composed configs, interpolation after merging);
    `run=False` only parses and instantiates (the drivers that fit themselves: pretrain, demo, grpo).

    `--overwrite` in `args` (taken out before parsing, so a saved config.yaml never carries it) or
    `overwrite=True` lets the fit reuse an earlier run's directory; `resume=True` says the driver fits
    from a checkpoint (`ie-eval fit` reads its own `--ckpt_path`)."""
    args = list(args)
    overwrite = overwrite or OVERWRITE_FLAG in args
    return RunDirectoryCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=expand_configs([a for a in args if a != OVERWRITE_FLAG]),
        run=run,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "omegaconf+"},
        overwrite=overwrite,
        resume=resume,
    )
