"""Critic evaluation: head and parsed-text correlations with MOS, format stability, ROUGE-1 vs references."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torchmetrics import Metric
from torchmetrics.functional.text import rouge_score

from ie_eval.data.critique_format import ParsedCritique
from ie_eval.data.records import MOS_DIMS
from ie_eval.metrics.correlation import ScoreCorrelations
from ie_eval.metrics.factuality import Factuality


class FormatRate(Metric):
    """Fraction of generated critiques whose final assessment parses (the paper's format stability)."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("parsed", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, parsed: Sequence[bool]) -> None:
        self.parsed = self.parsed + float(sum(bool(p) for p in parsed))  # not in place: see Factuality.update
        self.total = self.total + float(len(parsed))

    def compute(self) -> torch.Tensor:
        return self.parsed / self.total if self.total > 0 else torch.tensor(float("nan"), dtype=torch.float64)


class Rouge1(Metric):
    """Mean ROUGE-1 F over (critique, reference) pairs, as torchmetrics' ROUGEScore computes it.

    Held as a sum and a count: ROUGEScore keeps one tensor per pair in a list state, which DDP
    gathers one all_gather per element, so ranks with different pair counts would hang.
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("fmeasure", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("pairs", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, texts: Sequence[str], references: Sequence[str]) -> None:
        # rouge1 needs no nltk (only rougeLsum splits sentences with it).
        for text, reference in zip(texts, references, strict=True):
            self.fmeasure = self.fmeasure + float(rouge_score(text, reference, rouge_keys="rouge1")["rouge1_fmeasure"])
            self.pairs = self.pairs + 1.0

    def compute(self) -> torch.Tensor:
        return self.fmeasure / self.pairs if self.pairs > 0 else torch.tensor(float("nan"), dtype=torch.float64)


def updated_anywhere(metrics: dict[str, Metric]) -> dict[str, bool]:
    """Which of `metrics` saw an update on any rank. Under DDP every rank must compute (and so gather) the
    same metrics, though a rank's batches may have had no parsed critique, reference or facts: a rank
    whose ScoreCorrelations is empty where another's is not adds an empty (0, D) block to gather."""
    device = next(iter(metrics.values())).device
    counts = torch.tensor([float(m.update_count) for m in metrics.values()], device=device)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(counts)
        for metric, count in zip(metrics.values(), counts, strict=True):
            if isinstance(metric, ScoreCorrelations) and count > 0 and not metric.update_count:
                empty = torch.zeros(0, len(metric.dim_names), dtype=torch.float64, device=device)
                metric.update(empty, empty)
    return {name: bool(count > 0) for name, count in zip(metrics, counts, strict=True)}


class CritiqueMetrics(nn.Module):
    """Everything the critic is judged on, per epoch or per run.

    Keys of `compute()`: `{dim}_{plcc,srcc,krcc}` and `mean_*` for the regression head;
    `text_{dim}_*` and `text_mean_*` for the per-dimension scores parsed from generated text
    (sections format, parsed rows only); `text_overall_*` for the one overall parsed score (the
    think_answer answer, or the mean of the three) against the mean MOS; `format_rate` (parsed / generated); `rouge1` (ROUGE-1 F vs the reference critiques);
    `generated` (count); `factuality` and `unverifiable_claims` where rows carry synthetic facts
    (`metrics.factuality`). Text keys appear once some text was generated.
    """

    def __init__(self, dims: Sequence[str] = MOS_DIMS) -> None:
        super().__init__()
        self.head = ScoreCorrelations(dims)
        self.text = ScoreCorrelations(dims)
        self.text_overall = ScoreCorrelations(("overall",))
        self.format = FormatRate()
        self.rouge = Rouge1()
        self.factuality = Factuality()

    def metrics(self) -> dict[str, Metric]:
        return {"head": self.head, "text": self.text, "text_overall": self.text_overall, "format": self.format,
                "rouge": self.rouge, "factuality": self.factuality}

    def updated_anywhere(self) -> dict[str, bool]:
        return updated_anywhere(self.metrics())

    def update_scores(self, scores: torch.Tensor, mos: torch.Tensor, mos_mask: torch.Tensor) -> None:
        """Regression-head scores (B, D) vs MOS, rows with MOS only."""
        mask = mos_mask.bool().to(scores.device)
        if bool(mask.any()):
            self.head.update(scores[mask].float(), mos.to(scores.device)[mask].float())

    def update_texts(
        self,
        parsed: Sequence[ParsedCritique],
        mos: torch.Tensor,
        mos_mask: torch.Tensor,
        texts: Sequence[str] | None = None,
        references: Sequence[str | None] | None = None,
        facts: Sequence[Mapping[str, object] | None] | None = None,
    ) -> None:
        """Generated critiques: format rate, parsed-score correlations, ROUGE-1 where a reference exists,
        factuality where the edited image's facts are known."""
        self.format.update([p.parsed for p in parsed])
        truth = mos.detach().cpu().to(torch.float64)
        rows = [i for i, p in enumerate(parsed) if p.scores is not None and bool(mos_mask[i])]
        if rows:
            self.text.update(torch.tensor([parsed[i].scores for i in rows], dtype=torch.float64), truth[rows])
        rows = [i for i, p in enumerate(parsed) if p.parsed and bool(mos_mask[i])]
        if rows:
            overall = torch.tensor([[parsed[i].overall] for i in rows], dtype=torch.float64)
            self.text_overall.update(overall, truth[rows].mean(dim=1, keepdim=True))
        if texts is not None and references is not None:
            pairs = [(t, r) for t, r in zip(texts, references, strict=True) if r]
            if pairs:
                self.rouge.update([t for t, _ in pairs], [r for _, r in pairs])
        if texts is not None and facts is not None and any(facts):
            self.factuality.update(texts, facts)

    def compute(self) -> dict[str, torch.Tensor]:
        updated = self.updated_anywhere()
        out: dict[str, torch.Tensor] = {}
        if updated["head"]:
            out |= self.head.compute()
        if updated["format"]:
            out["format_rate"] = self.format.compute()
            with self.format.sync_context():  # the count over all ranks, not this rank's
                out["generated"] = self.format.total.clone()
            if updated["text"]:
                out |= {f"text_{k}": v for k, v in self.text.compute().items()}
            if updated["text_overall"]:
                out |= {f"text_{k}": v for k, v in self.text_overall.compute().items() if k.startswith("overall_")}
        if updated["rouge"]:
            out["rouge1"] = self.rouge.compute()
        if updated["factuality"]:
            out |= self.factuality.compute()
        return out

    def reset(self) -> None:
        for metric in self.metrics().values():
            metric.reset()
