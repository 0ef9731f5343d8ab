"""Critic evaluation: head and parsed-text correlations with MOS, format stability, ROUGE-1 vs references."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.text import ROUGEScore

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
        # rouge1 needs no nltk (only rougeLsum splits sentences with it).
        self.rouge = ROUGEScore(rouge_keys="rouge1")
        self.factuality = Factuality()

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
        out: dict[str, torch.Tensor] = {}
        if self.head.update_count:
            out |= self.head.compute()
        if self.format.update_count:
            out["format_rate"] = self.format.compute()
            out["generated"] = self.format.total.clone()
            if self.text.update_count:
                out |= {f"text_{k}": v for k, v in self.text.compute().items()}
            if self.text_overall.update_count:
                out |= {f"text_{k}": v for k, v in self.text_overall.compute().items() if k.startswith("overall_")}
        if self.rouge.update_count:
            out["rouge1"] = self.rouge.compute()["rouge1_fmeasure"]
        if self.factuality.update_count:
            out |= self.factuality.compute()
        return out

    def reset(self) -> None:
        for metric in (self.head, self.text, self.text_overall, self.format, self.rouge, self.factuality):
            metric.reset()
