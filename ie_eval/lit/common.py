"""Pieces every training LightningModule shares: config coercion and what the collator needs."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any, TypeVar

from ie_eval.data.collate import InputBudget

ConfigT = TypeVar("ConfigT")


def as_config(cls: type[ConfigT], value: ConfigT | dict | None) -> ConfigT:
    """A dataclass config from itself, a dict (checkpoint hparams) or None (defaults)."""
    if value is None:
        return cls()
    return value if isinstance(value, cls) else cls(**value)


def plain(value: Any) -> Any:
    """Dataclasses -> dicts, so checkpoints hold only plain types (loadable with weights_only)."""
    return asdict(value) if is_dataclass(value) else value


class CollatorInputsMixin:
    """Exposes the wrapped model's processor and prompt suffix, which the DataModule's collator reads,
    and records the DataModule's collator budget in the model, so its export carries it."""

    model: Any

    @property
    def processor(self) -> Any:
        return self.model.processor

    @property
    def prompt_suffix(self) -> str:
        return self.model.prompt_suffix

    def on_fit_start(self) -> None:
        hparams = getattr(getattr(self.trainer, "datamodule", None), "hparams", {})
        self.model.input_budget = {k: int(hparams[k]) for k in InputBudget.__dataclass_fields__ if k in hparams}
