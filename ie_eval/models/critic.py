"""ReasonEdit's dual-head critic (paper section 5.1, appendix D.1).

One backbone, two outputs: the LM head writes a structured critique, and the regression head
(RewardModel's Pooler + MultiHeadRegressor) reads the prefill state of the last prompt token
and predicts (visual quality, instruction alignment, content preservation). So one checkpoint
serves both modes:

- score-only: `model(batch)`, one prefill, no generation (the paper's 1 s/sample path);
- CoT: `model.critique(batch)`, the same scores plus greedy-generated text and its parsed scores.

SFT runs one forward pass over prompt + answer: the prompt's last state (via `prompt_mask`)
feeds the head, and the answer positions feed the LM head for the CE loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ie_eval.data.collate import END_OF_TURN, model_inputs, pad_id
from ie_eval.data.critique_format import ParsedCritique, check_critique_format, parse_critique
from ie_eval.data.records import MOS_DIMS
from ie_eval.losses.linear_ce import HeadInputs, chunkable_head
from ie_eval.losses.sft import critique_token_positions
from ie_eval.models.adapters import VISION_PROJECTIONS
from ie_eval.models.backbone import Backbone
from ie_eval.models.reward_model import RewardModel
from ie_eval.models.sharding import parameters_sharded

CRITIC_CONFIG_NAME = "critic_config.json"
# The head pools the prompt, so anchors that live in the answer (`marker`) cannot be used.
CRITIC_POOLINGS: tuple[str, ...] = ("prefill", "score_anchor", "mean")
# Overall score = mean of the three dims (ImagenHub-style single number).
OVERALL_WEIGHTS: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
# Paper table 9: LoRA on attention + MLP of the language model and on the vision tower and merger
# (AdapterConfig(target_modules=CRITIC_LANGUAGE_MODULES, include_vision=True) adds VISION_PROJECTIONS).
CRITIC_LANGUAGE_MODULES: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PAPER_LORA_MODULES: tuple[str, ...] = CRITIC_LANGUAGE_MODULES + VISION_PROJECTIONS


@dataclass
class SFTOutputs:
    """One teacher-forced pass over prompt + critique.

    scores: (B, D) regression head on the prompt's pooled state.
    token_hidden: (N, H) final hidden states at the N positions whose next token is a critique token.
    token_targets: (N,) those next tokens; token_rows: (N,) which sample each belongs to.
    lm_head: the backbone's output embedding (its `token_logits` are the (N, V) LM logits).
    """

    scores: torch.Tensor
    token_hidden: torch.Tensor
    token_targets: torch.Tensor
    token_rows: torch.Tensor
    lm_head: nn.Module

    @property
    def token_logits(self) -> torch.Tensor:
        return self.lm_head(self.token_hidden)

    def token_predictions(self, chunk_tokens: int | None) -> torch.Tensor | HeadInputs:
        """What CE is taken of: the head's `HeadInputs` for chunked CE where the head is a plain bias-free
        Linear on whole weights, else (None, a wrapped head, FSDP / ZeRO-3 shards) the logits themselves."""
        if chunk_tokens and chunkable_head(self.lm_head):
            return HeadInputs(self.token_hidden, self.lm_head.weight)
        return self.token_logits


@dataclass
class CritiqueOutputs:
    """CoT mode: generated texts, what parses from them, and the regression head's (B, D) scores."""

    texts: list[str]
    parsed: list[ParsedCritique]
    scores: torch.Tensor


class CriticModel(RewardModel):
    """RewardModel's regression path on MOS dims, plus the backbone's LM head for critiques."""

    config_name = CRITIC_CONFIG_NAME
    trains_lm_head = True

    def __init__(
        self,
        backbone: Backbone,
        pooling: str = "prefill",
        *,
        dims: Sequence[str] = MOS_DIMS,
        reward_weights: Sequence[float] = OVERALL_WEIGHTS,
        critique_format: str = "sections",
        **rest: Any,
    ) -> None:
        """As RewardModel (`rest`: marker, head, backbone_spec), on the MOS dims and a prompt-reading pooling;
        `critique_format` (prompts.CRITIQUE_FORMATS) is how its critiques are prompted, written and read."""
        if pooling not in CRITIC_POOLINGS:
            raise ValueError(
                f"critic pooling '{pooling}' is not supported; the head reads the prompt: choose one of {CRITIC_POOLINGS}"
            )
        super().__init__(backbone, pooling, dims=dims, reward_weights=reward_weights, **rest)
        self.critique_format = check_critique_format(critique_format)
        tokenizer = self.processor.tokenizer
        end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN) if END_OF_TURN in tokenizer.get_vocab() else None
        generation_eos = self.backbone.generation_config.eos_token_id
        extra = generation_eos if isinstance(generation_eos, (list, tuple)) else [generation_eos]
        self.stop_token_ids = sorted({int(i) for i in [end_of_turn, tokenizer.eos_token_id, *extra] if i is not None})
        self.pad_token_id = pad_id(tokenizer)

    def config_dict(self) -> dict[str, Any]:
        return super().config_dict() | {"critique_format": self.critique_format}

    @classmethod
    def saved_options(cls, config: dict) -> dict[str, Any]:
        # Exports from before the format option wrote sections critiques.
        return super().saved_options(config) | {"critique_format": config.get("critique_format", "sections")}

    def parse(self, text: str) -> ParsedCritique:
        """One of this critic's critiques, read in its format."""
        return parse_critique(text, self.critique_format)

    # --- training -----------------------------------------------------------------------
    def sft_forward(self, batch: dict[str, Any]) -> SFTOutputs:
        """Head scores and critique-token logits from ONE pass over a `task="critic", mode="train"` batch.

        Logits are computed only where CE is taken (answer tokens of samples with a critique), so
        score-only samples and the prompt never touch the (V-wide) LM head.
        """
        hidden = self.final_hidden_states(batch)  # (B, T, H)
        scores = self.head(self.pool(hidden, batch))
        rows, cols, targets = critique_token_positions(batch["labels"], batch["has_critique"])
        return SFTOutputs(scores=scores, token_hidden=hidden[rows, cols], token_targets=targets, token_rows=rows,
                          lm_head=self.backbone.get_output_embeddings())

    # --- inference ----------------------------------------------------------------------
    @torch.no_grad()
    def generate_texts(self, batch: dict[str, Any], max_new_tokens: int = 256) -> list[str]:
        """Greedy critiques for a left-padded `mode="generate"` batch, prompt and special tokens removed."""
        inputs = model_inputs(batch)
        output = self.backbone.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
            eos_token_id=self.stop_token_ids, pad_token_id=self.pad_token_id,
            synced_gpus=parameters_sharded(self.backbone),  # sharded: every rank runs each step's forward
        )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return self.processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    @torch.no_grad()
    def critique(self, batch: dict[str, Any], max_new_tokens: int = 256) -> CritiqueOutputs:
        """CoT mode: head scores (same as score-only mode) + generated critiques and their parsed scores."""
        scores = self(batch)
        texts = self.generate_texts(batch, max_new_tokens)
        return CritiqueOutputs(texts=texts, parsed=[self.parse(t) for t in texts], scores=scores)
