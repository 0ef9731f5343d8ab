"""The pairwise preference reward model (EditReward): one edit in, (mu, log sigma) per dimension out.

Same backbone, pooling anchors, adapters and export as RE-Reward (`RewardModel`); the prompt is
the edit alone (`preference_messages`, collator task "preference") and the heads are
`GaussianHeads`. Training compares two edits of one instruction through the fused
(mu, log sigma) of each (`fuse_gaussian_heads`, EditReward's mean / min / sum); at inference mu
is the score and sigma a confidence indicator.

One difference from EditReward, by design: EditReward runs one forward pass per head, each with a
prompt about its own dimension; here one prompt's pooled state feeds every head (one pass per edit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ie_eval.data.records import MOS_DIMS
from ie_eval.models.backbone import Backbone
from ie_eval.models.heads import FUSIONS, GaussianHeads, fuse_gaussian_heads
from ie_eval.models.reward_model import RewardModel

PAIRWISE_CONFIG_NAME = "pairwise_reward_config.json"


class PairwiseRewardModel(RewardModel):
    """(B, T) tokens + images of B edits -> ((B, D) mu, (B, D) log sigma) in `self.dims` order."""

    config_name = PAIRWISE_CONFIG_NAME
    head_class = GaussianHeads

    def __init__(self, backbone: Backbone, *, dims: Sequence[str] = MOS_DIMS, fusion: str = "mean", **rest: Any) -> None:
        """As RewardModel (`rest`: pooling, marker, head, backbone_spec); fusion: how the heads make one score."""
        if fusion not in FUSIONS:
            raise ValueError(f"unknown head fusion {fusion!r}; choose one of {FUSIONS}")
        rest.pop("reward_weights", None)  # a preference model has no weighted sum: `fusion` makes its score
        super().__init__(backbone, dims=dims, reward_weights=[1.0 / len(dims)] * len(dims), **rest)
        self.fusion = fusion

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return self.head(self.pooled_states(batch))

    def fused(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) mu and (B,) log sigma of each edit's one score."""
        mu, log_sigma = self(batch)
        return fuse_gaussian_heads(mu, log_sigma, self.fusion)

    def config_dict(self) -> dict:
        return {**super().config_dict(), "fusion": self.fusion}

    @classmethod
    def saved_options(cls, config: dict) -> dict[str, Any]:
        return {"fusion": config["fusion"]}
