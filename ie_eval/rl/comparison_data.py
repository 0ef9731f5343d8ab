"""GCPO prompts: preference pairs, each given to the policy as its two edits (preferred, rejected).

A batch is a flat list of `EditRecord`s, the two sides of each of `pairs_per_step` comparisons
next to each other, each carrying `meta["comparison_id"]` and `meta["comparison_role"]`, so the
GRPO module collates them like any prompts and `WinRatioTerm` finds each trace's opponents.
Pairs labelled as ties ("same") are left out, as Edit-R1 does. Sources and splits are those of
the pairwise reward model (`ie_eval.data.pairwise`: synth:DIR, pairwise:PATH, kway:PATH, ...).
Under DDP the train batches shard themselves (ranks take turns on one seeded stream), so the
trainer runs with `use_distributed_sampler: false`, as for GRPO.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from torch.utils.data import DataLoader

from ie_eval.data.pairwise import COMPARISON_KEY, ROLE_KEY, PreferenceDataModule, PreferencePair
from ie_eval.data.records import EditRecord
from ie_eval.data.resumable import ResumableLoader
from ie_eval.data.splits import DEFAULT_SALT
from ie_eval.rl.prompt_data import PromptMixSampler, RecordBatch, check_self_sharding, held_out_loader

log = logging.getLogger(__name__)


def comparison_prompts(pair: PreferencePair) -> list[EditRecord]:
    """The pair's [preferred, rejected] edits as prompts (critique fields dropped) tagged with the comparison."""
    comparison = f"{pair.group_id}:{pair.first.pair_id}|{pair.second.pair_id}"
    return [
        replace(record, critique=None, critique_id=None, critique_scores=None,
                meta={**record.meta, COMPARISON_KEY: comparison, ROLE_KEY: role})
        for record, role in ((pair.preferred, "preferred"), (pair.rejected, "rejected"))
    ]


def flatten(pairs: Sequence[PreferencePair]) -> RecordBatch:
    return RecordBatch([record for pair in pairs for record in comparison_prompts(pair)])


class ComparisonPromptDataModule(PreferenceDataModule):
    """Train comparisons `pairs_per_step` at a time; held-out (val / test) comparisons from unseen sources.

    Args:
        sources: preference source SPECs (see `ie_eval.data.pairwise`).
        pairs_per_step: comparisons per GCPO step (2 prompts each, each sampled `group_size` times).
        eval_batch_size: comparisons per held-out batch. val_pairs / test_pairs: caps (None: all).
    """

    def __init__(
        self,
        sources: str | list[str],
        pairs_per_step: int = 2,
        split_ratios: dict[str, float] | None = None,
        split_salt: str = DEFAULT_SALT,
        strict: bool = True,
        eval_batch_size: int = 8,
        val_pairs: int | None = None,
        test_pairs: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.use_sources(sources, split_ratios)

    def train_dataloader(self) -> DataLoader:
        pairs = self.splits["train"]
        check_self_sharding(self.trainer, "GCPO comparisons", "configs/gcpo/*.yaml")
        sampler = PromptMixSampler(range(len(pairs)), [], self.hparams.pairs_per_step, 1.0, self.hparams.seed)
        loader = ResumableLoader(pairs, batch_sampler=sampler, collate_fn=flatten)
        loader.trainer = self.trainer
        return loader

    def held_out_loader(self, split: str) -> DataLoader:
        cap = {"val": self.hparams.val_pairs, "test": self.hparams.test_pairs}.get(split)
        pairs = sorted(self.splits.get(split, []), key=lambda p: (p.group_id, p.first.pair_id))
        if not pairs:
            raise ValueError(f"split '{split}' has no comparisons; check split_ratios {self.split_ratios}")
        return held_out_loader(pairs[:cap] if cap else pairs, self.hparams.eval_batch_size, flatten)
