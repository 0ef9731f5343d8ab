"""Scorers backed by our trained models: RE-Reward (`rm:`), the critic score-only (`critic:`) and CoT
(`critic-cot:`), and the pairwise preference reward model (`pairwise-rm:`).

Inputs use the collator budget the model was trained with (`input_budget` in its saved
config) unless `--max-pixels` / `--max-length` override it. Each also scores Qwen-VL chat
messages (`score_messages`; convention in `ie_eval.data.chat_inputs`): their images go through
`qwen_vl_utils.process_vision_info` within that same budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ie_eval.data.chat_inputs import PreloadedCollator, VisionBudget, record_from_messages
from ie_eval.data.collate import EditCollator, InputBudget
from ie_eval.data.records import CRITIQUE_DIMS, MOS_DIMS, OVERALL_DIMS, EditRecord
from ie_eval.eval.scorer_base import ScoreOutput, Scorer, ScorerOptions
from ie_eval.progress import track


def budget(model, options: ScorerOptions) -> dict[str, int]:
    """Collator kwargs: the training budget, overridden by the options that are set."""
    return InputBudget.of(model.input_budget, max_pixels=options.max_pixels, max_length=options.max_length).as_dict()


class MessagesInput:
    """`score_messages(conversations)`: one Qwen-VL conversation per edit -> records whose images
    came through process_vision_info (within the collator's budget) -> `score`."""

    collator: EditCollator
    needs_critique: bool

    def records_from_messages(self, conversations: Sequence[object], base_dir: Path | None = None) -> list[EditRecord]:
        """One record per conversation, sample_id `conversations.<i>`; relative paths under `base_dir`."""
        budget = VisionBudget.of(self.collator)
        return [
            record_from_messages(messages, budget, f"conversations.{i}", base_dir=base_dir,
                                 require_critique=self.needs_critique)
            for i, messages in enumerate(conversations)
        ]

    def score_messages(self, conversations: Sequence[object], base_dir: Path | None = None) -> ScoreOutput:
        return self.score(self.records_from_messages(conversations, base_dir))  # type: ignore[attr-defined]


class RewardCheckpointScorer(MessagesInput, Scorer):
    """`rm:DIR`: a saved RewardModel scoring each record's critique (score-only prefill)."""

    dims = CRITIQUE_DIMS
    needs_critique = True

    def __init__(self, directory: str, options: ScorerOptions) -> None:
        super().__init__(f"rm:{directory}")
        from ie_eval.models.reward_model import RewardModel
        from ie_eval.serve.scoring import RewardScoring

        self.model = RewardModel.from_pretrained(directory, device=options.device)
        limits = budget(self.model, options)
        self.scoring = RewardScoring(self.model, batch_size=options.batch_size, max_pixels=limits.get("max_pixels"),
                                     max_length=limits.get("max_length"))
        self.collator = self.scoring.collator

    def score(self, records: Sequence[EditRecord]) -> ScoreOutput:
        results = self.scoring.score_records(records, progress="scoring rm")
        return ScoreOutput(scores=[[r.logicality, r.accuracy, r.usefulness] for r in results])

    def info(self) -> dict:
        return super().info() | {"backbone": self.model.backbone_spec, "pooling": self.model.pooling}


class CriticScorer(MessagesInput, Scorer):
    """`critic:DIR`: the critic's regression head on the prompt's prefill state (no generation)."""

    dims = MOS_DIMS
    mode = "score"

    def __init__(self, directory: str, options: ScorerOptions) -> None:
        super().__init__(f"critic:{directory}")
        from ie_eval.models.critic import CriticModel

        self.options = options
        self.model = CriticModel.from_pretrained(directory, device=options.device)
        self.collator = PreloadedCollator(self.model.processor, task="critic", mode=self.mode,
                                          prompt_suffix=self.model.prompt_suffix,
                                          critique_format=self.model.critique_format, **budget(self.model, options))

    def batches(self, records: Sequence[EditRecord]):
        device = next(self.model.parameters()).device
        for start in track(range(0, len(records), self.options.batch_size), f"scoring {self.spec.split(':')[0]}"):
            batch = self.collator(records[start : start + self.options.batch_size])
            yield {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}

    @torch.inference_mode()
    def score(self, records: Sequence[EditRecord]) -> ScoreOutput:
        scores = [row for batch in self.batches(records) for row in self.model(batch).float().cpu().tolist()]
        return ScoreOutput(scores=scores)

    def info(self) -> dict:
        return super().info() | {"backbone": self.model.backbone_spec, "pooling": self.model.pooling}


class CriticCoTScorer(CriticScorer):
    """`critic-cot:DIR`: greedy critique, scores parsed from it in the critic's format (None if unparsable):
    the three `[Final Assessment]` scores (sections), or the one `<answer>` score against the overall MOS
    (think_answer, dims `("overall",)`).

    The head's scores from the same prefill are kept in `info["head_scores"]` for comparison.
    """

    generative = True
    mode = "generate"

    def __init__(self, directory: str, options: ScorerOptions) -> None:
        super().__init__(directory, options)
        self.spec = f"critic-cot:{directory}"
        if self.model.critique_format == "think_answer":
            self.dims = OVERALL_DIMS

    def score(self, records: Sequence[EditRecord]) -> ScoreOutput:
        scores, texts, head = [], [], []
        for batch in self.batches(records):
            result = self.model.critique(batch, self.options.max_new_tokens)
            texts += result.texts
            if self.dims == OVERALL_DIMS:
                scores += [[p.overall] if p.parsed else None for p in result.parsed]
            else:
                scores += [list(p.scores) if p.scores is not None else None for p in result.parsed]
            head += result.scores.float().cpu().tolist()
        return ScoreOutput(scores=scores, texts=texts, info={"head_scores": head})


class PairwiseCheckpointScorer(MessagesInput, Scorer):
    """`pairwise-rm:DIR`: a saved PairwiseRewardModel; its scores are mu per dim, sigma per dim goes to info."""

    def __init__(self, directory: str, options: ScorerOptions) -> None:
        super().__init__(f"pairwise-rm:{directory}")
        from ie_eval.models.pairwise_model import PairwiseRewardModel

        self.options = options
        self.model = PairwiseRewardModel.from_pretrained(directory, device=options.device)
        self.dims = tuple(self.model.dims)
        self.collator = PreloadedCollator(self.model.processor, task="preference", mode="score",
                                          prompt_suffix=self.model.prompt_suffix, **budget(self.model, options))

    @torch.inference_mode()
    def score(self, records: Sequence[EditRecord]) -> ScoreOutput:
        device = next(self.model.parameters()).device
        mus, sigmas = [], []
        for start in track(range(0, len(records), self.options.batch_size), "scoring pairwise-rm"):
            batch = self.collator(records[start : start + self.options.batch_size])
            mu, log_sigma = self.model({k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()})
            mus += mu.float().cpu().tolist()
            sigmas += log_sigma.float().exp().cpu().tolist()
        return ScoreOutput(scores=mus, info={"sigma": sigmas, "fusion": self.model.fusion})

    def info(self) -> dict:
        return super().info() | {"backbone": self.model.backbone_spec, "pooling": self.model.pooling,
                                 "fusion": self.model.fusion}


SCORER_CLASSES = {
    "rm": RewardCheckpointScorer, "critic": CriticScorer, "critic-cot": CriticCoTScorer,
    "pairwise-rm": PairwiseCheckpointScorer,
}
