"""Critic SFT data: score+CoT and score-only pools, mixed per epoch by a phased schedule (paper table 8).

Pools:
- `score_cot`: rows of `manifest` with MOS and a critique; per pair, the best critique (highest
  mean critique_scores: SFT should imitate good critiques) is the target text, restructured
  into CRITIQUE_FORMAT when the row says which dimension each claim is about (`target_format`).
- `score_only`: rows of `score_only_manifest` with MOS; their critiques, if any, are dropped.

Each phase names its epochs (1-based, inclusive), its pools and its active losses, e.g.

    phases:
      - {name: dual_warmup, epochs: [1, 1], pools: [score_cot], losses: [ce, huber]}
      - {name: mixed, epochs: [2, 4], pools: [score_cot, score_only], losses: [ce, huber]}
      - {name: refresh, epochs: [5, 6], pools: [score_cot], losses: [ce, huber]}

The train loader is rebuilt every epoch (`Trainer(reload_dataloaders_every_n_epochs=1)`) from
the phase of `trainer.current_epoch`; `current_phase` tells the LightningModule which losses to
apply. Validation and test use the score+CoT pool, one record per pair, with batches that carry
both the teacher-forced target (CE, head scores) and the left-padded prompt (generation).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from lightning.pytorch.utilities import rank_zero_info

from ie_eval.data.collate import EditCollator
from ie_eval.data.critique_format import parse_final_assessment
from ie_eval.data.datamodule import EditDataModule, check_targets
from ie_eval.data.normalize import normalize_records
from ie_eval.data.prompts import format_critique
from ie_eval.data.readers import read_manifests
from ie_eval.data.records import MOS_DIMS, EditRecord
from ie_eval.data.splits import split_records
from ie_eval.data.synth.critiques import KEY_DIM
from ie_eval.losses.sft import LOSS_TERMS, check_loss_terms

log = logging.getLogger(__name__)

POOLS: tuple[str, ...] = ("score_cot", "score_only")
TARGET_FORMATS: tuple[str, ...] = ("structured", "verbatim")
CRITIQUE_SELECTIONS: tuple[str, ...] = ("best", "all")
NO_OBSERVATION = "No specific observation."


@dataclass(frozen=True)
class Phase:
    """Epochs [first, last] (1-based, inclusive) train on `pools` with `losses` active."""

    name: str
    epochs: tuple[int, int]
    pools: tuple[str, ...] = ("score_cot",)
    losses: tuple[str, ...] = LOSS_TERMS

    def __post_init__(self) -> None:
        first, last = (int(e) for e in self.epochs)
        if not 1 <= first <= last:
            raise ValueError(f"phase '{self.name}': epochs must be [first, last] with 1 <= first <= last, got {self.epochs}")
        unknown = sorted(set(self.pools) - set(POOLS))
        if unknown or not self.pools:
            raise ValueError(f"phase '{self.name}': pools must be a non-empty subset of {POOLS}, got {self.pools}")
        check_loss_terms(self.losses)
        object.__setattr__(self, "epochs", (first, last))
        object.__setattr__(self, "pools", tuple(self.pools))
        object.__setattr__(self, "losses", tuple(self.losses))

    def covers(self, epoch: int) -> bool:
        """Whether 0-based `epoch` (Lightning's current_epoch) is in this phase."""
        return self.epochs[0] <= epoch + 1 <= self.epochs[1]


def build_phases(phases: Sequence[Mapping[str, Any] | Phase] | None) -> list[Phase]:
    """Phases from config dicts, checked to be contiguous from epoch 1 and non-overlapping."""
    if not phases:
        return [Phase(name="score_cot", epochs=(1, 10**9))]
    built = [p if isinstance(p, Phase) else Phase(**p) for p in phases]
    expected = 1
    for phase in built:
        if phase.epochs[0] != expected:
            raise ValueError(
                f"phase '{phase.name}' starts at epoch {phase.epochs[0]}, expected {expected}: phases must be "
                "contiguous from epoch 1, in order"
            )
        expected = phase.epochs[1] + 1
    return built


def critique_quality(record: EditRecord) -> float:
    """Mean of (logicality, accuracy, usefulness); -inf without scores (never preferred)."""
    scores = record.critique_scores
    return sum(scores) / len(scores) if scores else float("-inf")


def best_critique_per_pair(records: Sequence[EditRecord]) -> list[EditRecord]:
    """One record per pair: the critique with the best `critique_quality` (first on ties), pair order kept."""
    best: dict[str, EditRecord] = {}
    for record in records:
        current = best.get(record.pair_id)
        if current is None or (record.critique is not None and critique_quality(record) > critique_quality(current)):
            best[record.pair_id] = record
    return list(best.values())


def structured_critique(record: EditRecord) -> str | None:
    """The record's critique in CRITIQUE_FORMAT, or the text unchanged when it cannot be restructured.

    Restructuring needs the dimension of each claim: the synthetic benchmark keeps them in
    `meta["claims"]` as `{"key", "text"}` (the claim texts are verbatim in the critique; their
    construction truth is not used). The final scores are parsed from the critique itself.
    """
    if record.critique is None:
        return None
    claims = record.meta.get("claims") if isinstance(record.meta, Mapping) else None
    scores = parse_final_assessment(record.critique)
    if not claims or scores is None or any(c.get("key") not in KEY_DIM for c in claims):
        return record.critique
    observations: dict[str, list[str]] = {dim: [] for dim in MOS_DIMS}
    for claim in claims:
        text = str(claim["text"]).strip()
        observations[MOS_DIMS[KEY_DIM[claim["key"]]]].append(f"{text[:1].upper()}{text[1:]}.")
    return format_critique({dim: " ".join(lines) or NO_OBSERVATION for dim, lines in observations.items()}, scores)


def sft_targets(records: Sequence[EditRecord], selection: str, target_format: str) -> list[EditRecord]:
    """Score+CoT records with their SFT target text in `critique`."""
    chosen = best_critique_per_pair(records) if selection == "best" else list(records)
    if target_format == "verbatim":
        return chosen
    return [replace(r, critique=structured_critique(r)) for r in chosen]


def score_only(records: Sequence[EditRecord]) -> list[EditRecord]:
    """One critique-free record per pair."""
    pairs = {r.pair_id: replace(r, critique=None, critique_id=None, critique_scores=None) for r in records}
    return list(pairs.values())


def record_facts(record: EditRecord) -> Mapping[str, Any] | None:
    """The edited image's synthetic facts (`meta["facts"]`), None for data without them."""
    facts = record.meta.get("facts") if isinstance(record.meta, Mapping) else None
    return facts if isinstance(facts, Mapping) else None


@dataclass
class CriticEvalCollator:
    """Teacher-forced batch (CE, head scores) + `generation` (the same prompts, left-padded) + `references`."""

    teacher: EditCollator
    generation: EditCollator

    def __call__(self, records: Sequence[EditRecord]) -> dict[str, Any]:
        batch = self.teacher(records)
        batch["generation"] = self.generation(records)
        batch["references"] = [self.teacher.answer(record) for record in records]  # in the critic's format
        batch["facts"] = [record_facts(record) for record in records]
        return batch


class PhasedDataModule(EditDataModule):
    """EditDataModule for critic SFT whose training composition follows `phases` epoch by epoch.

    Args (besides EditDataModule's; `task` is always "critic"):
        manifest: score+CoT rows (also the val/test data).
        score_only_manifest: rows used as score-only samples (None: no such pool).
        phases: list of {name, epochs: [first, last], pools, losses}; None = score_cot, CE + Huber, always.
        critique_selection: "best" (one critique per pair, highest mean critique_scores) or "all".
        target_format: "structured" (CRITIQUE_FORMAT when restructurable) or "verbatim".
    """

    def __init__(
        self,
        manifest: str | list[str],
        score_only_manifest: str | list[str] | None = None,
        phases: list[dict] | None = None,
        critique_selection: str = "best",
        target_format: str = "structured",
        **kwargs: Any,
    ) -> None:
        super().__init__(manifest, task="critic", **kwargs)
        self.hparams["task"] = "critic"  # LightningCLI records only the arguments it passed, not this fixed one
        if critique_selection not in CRITIQUE_SELECTIONS:
            raise ValueError(f"unknown critique_selection '{critique_selection}'; choose one of {CRITIQUE_SELECTIONS}")
        if target_format not in TARGET_FORMATS:
            raise ValueError(f"unknown target_format '{target_format}'; choose one of {TARGET_FORMATS}")
        self.phases = build_phases(phases)
        wanted = {pool for phase in self.phases for pool in phase.pools}
        if "score_only" in wanted and not score_only_manifest:
            raise ValueError("a phase uses pool 'score_only' but no score_only_manifest is set")
        self.score_only_manifests = (
            [] if not score_only_manifest else [score_only_manifest] if isinstance(score_only_manifest, str)
            else list(score_only_manifest)
        )
        self.pools: dict[str, dict[str, list[EditRecord]]] = {}
        self.current_phase: Phase | None = None

    # --- records ------------------------------------------------------------------------
    def read_pools(self) -> tuple[list[EditRecord], list[EditRecord]]:
        """(score+CoT records, score-only records), normalized together since they share annotators."""
        parts = []
        for paths in (self.manifests, self.score_only_manifests):
            result = read_manifests(paths, strict=self.hparams.strict)
            if result.skipped:
                log.warning(result.summary())
            parts.append(result.records)
        if self.hparams.score_normalization == "none":
            return parts[0], parts[1]
        records = normalize_records(parts[0] + parts[1], method=self.hparams.score_normalization)
        return records[: len(parts[0])], records[len(parts[0]) :]

    def setup(self, stage: str | None = None) -> None:
        if self.pools:
            return
        ratios, salt = self.split_ratios, self.hparams.split_salt
        cot, only = self.read_pools()
        self.pools["score_cot"] = {
            name: sft_targets(records, self.hparams.critique_selection, self.hparams.target_format)
            for name, records in split_records(cot, ratios, salt=salt).items()
        }
        if self.score_only_manifests:
            self.pools["score_only"] = {
                name: score_only(records) for name, records in split_records(only, ratios, salt=salt).items()
            }
        for pool, splits in self.pools.items():
            for name, records in splits.items():
                check_targets(records, "critic", f"pool '{pool}' [{name} split]")
        self.splits = dict(self.pools["score_cot"])
        log.info("critic pools: %s", {p: {n: len(r) for n, r in s.items()} for p, s in self.pools.items()})

    # --- the schedule -------------------------------------------------------------------
    def phase_at(self, epoch: int) -> Phase:
        """The phase of 0-based `epoch`."""
        for phase in self.phases:
            if phase.covers(epoch):
                return phase
        raise ValueError(
            f"epoch {epoch + 1} is not covered by the phases {[(p.name, p.epochs) for p in self.phases]}; "
            "extend the last phase or lower max_epochs"
        )

    def phase_records(self, phase: Phase, split: str = "train") -> list[EditRecord]:
        return [record for pool in phase.pools for record in self.pools[pool].get(split, [])]

    def train_batches_in_epoch(self, epoch: int) -> int:
        """Length of the train loader the phase of `epoch` gives (for the LR schedule's total steps)."""
        self.setup("fit")
        return len(self._phase_loader(self.phase_at(epoch)))

    def _phase_loader(self, phase: Phase):
        self.splits["train"] = self.phase_records(phase)
        return super().train_dataloader()

    def train_dataloader(self):
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        if self.trainer is not None and len(self.phases) > 1 and self.trainer.reload_dataloaders_every_n_epochs != 1:
            raise ValueError(
                "PhasedDataModule switches composition between epochs: set "
                "trainer.reload_dataloaders_every_n_epochs: 1"
            )
        phase = self.phase_at(epoch)
        loader = self._phase_loader(phase)
        self.current_phase = phase
        counts = {pool: len(self.pools[pool].get("train", [])) for pool in phase.pools}
        first, last = phase.epochs
        rank_zero_info(f"epoch {epoch + 1}: phase '{phase.name}' (epochs {first}-{last}), train samples {counts}, losses {list(phase.losses)}")
        return loader

    # --- evaluation batches ---------------------------------------------------------------
    def collator(self, mode: str) -> EditCollator | CriticEvalCollator:
        """Train: prompt + target. Evaluation ("score"): teacher-forced + generation batches together."""
        if mode != "score":
            return super().collator(mode)
        return CriticEvalCollator(super().collator("train"), super().collator("generate"))
