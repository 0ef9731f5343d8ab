"""PLCC / SRCC / KRCC per score dimension and their mean, as one torchmetrics Metric."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric
from torchmetrics.functional import kendall_rank_corrcoef, pearson_corrcoef, spearman_corrcoef

CORRELATIONS = ("plcc", "srcc", "krcc")


class ScoreCorrelations(Metric):
    """Accumulates (pred, target) rows and reports correlations per dim and their mean.

    Computed in float64 over everything seen since the last reset (correlations do not
    decompose over batches), so values match scipy.stats on the same data. Under DDP the
    rows of all ranks are gathered before computing.
    """

    full_state_update = False

    def __init__(self, dim_names: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.dim_names = tuple(dim_names)
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape or pred.shape[-1] != len(self.dim_names):
            raise ValueError(
                f"ScoreCorrelations: expected (B, {len(self.dim_names)}) tensors, got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        self.preds.append(pred.detach().to(torch.float64))
        self.targets.append(target.detach().to(torch.float64))

    def compute(self) -> dict[str, torch.Tensor]:
        preds = torch.cat(self.preds) if isinstance(self.preds, list) else self.preds
        targets = torch.cat(self.targets) if isinstance(self.targets, list) else self.targets
        if preds.shape[0] < 2:
            nan = torch.tensor(float("nan"), dtype=torch.float64)
            return {f"{d}_{c}": nan for d in self.dim_names for c in CORRELATIONS}
        out: dict[str, torch.Tensor] = {}
        functions = {"plcc": pearson_corrcoef, "srcc": spearman_corrcoef, "krcc": kendall_rank_corrcoef}
        for name, function in functions.items():
            # Column by column: torchmetrics' multi-output path wants >1 column.
            per_dim = torch.stack([function(preds[:, i], targets[:, i]) for i in range(len(self.dim_names))])
            for index, dim in enumerate(self.dim_names):
                out[f"{dim}_{name}"] = per_dim[index]
            out[f"mean_{name}"] = per_dim.mean()
        return out
