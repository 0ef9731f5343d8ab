"""Backbone + pooling + multi-head regressor, with a pickle-free save/load.

The same class serves RE-Reward (critique -> logicality, accuracy, usefulness) and the
critic's score-only path (edit -> visual quality, alignment, preservation): `dims` says which.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ie_eval import __version__
from ie_eval.data.collate import model_inputs
from ie_eval.data.prompts import FINAL_ASSESSMENT
from ie_eval.data.records import CRITIQUE_DIMS
from ie_eval.models.adapters import AdapterConfig, apply_adapter, qlora_device_map, quantization_config
from ie_eval.models.backbone import Backbone, backbone_from_file, load_backbone
from ie_eval.models.export import atomic_export, check_finished_export
from ie_eval.models.heads import HeadConfig, MultiHeadRegressor
from ie_eval.models.pooling import SCORE_ANCHOR_TOKEN, Pooler, check_pooling_name
from ie_eval.models.shared_prefix import shared_prefix_hidden_states

CONFIG_NAME = "reward_config.json"
HEAD_NAME = "head.safetensors"
ADDED_EMBEDDINGS_NAME = "added_embeddings.safetensors"
# logicality, accuracy, usefulness: ReasonEdit's public RE-Reward weights (RE-reward/reward_infer.py); the paper
# (eq. 12) says only that accuracy weighs most. Every config sets its own; this is the one default.
DEFAULT_REWARD_WEIGHTS = (0.3, 0.4, 0.3)


def marker_patterns(tokenizer: Any, marker: str) -> list[list[int]]:
    """Token-id spellings of `marker` as it can appear mid-text (bare, after a space or newline)."""
    spellings = []
    for prefix in ("", " ", "\n"):
        ids = tokenizer(prefix + marker, add_special_tokens=False)["input_ids"]
        prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else []
        if ids[: len(prefix_ids)] == prefix_ids:
            ids = ids[len(prefix_ids) :]
        if ids and ids not in spellings:
            spellings.append(ids)
    return spellings


def quantized_load_kwargs(adapter: AdapterConfig | None) -> dict:
    """Extra `load_backbone` kwargs an adapter needs: for QLoRA the 4-bit config and this rank's GPU, else none."""
    config = quantization_config(adapter) if adapter is not None else None
    return {"quantization_config": config, "device_map": qlora_device_map()} if config is not None else {}


def inner_model(model: nn.Module) -> nn.Module:
    """The multimodal decoder (vision + language, no LM head) under any PEFT wrapping."""
    if hasattr(model, "peft_config"):
        model = model.base_model.model
    return model.model


def freeze_untied_lm_head(backbone: nn.Module) -> None:
    """Freeze an LM head not tied to the input embeddings: the scorer reads hidden states, never logits,
    so the head gets no gradient, and DDP (which waits for every trainable parameter's) would fail."""
    head, embeddings = backbone.get_output_embeddings(), backbone.get_input_embeddings()
    if head is not None and head.weight is not embeddings.weight:
        head.requires_grad_(False)


class RewardModel(nn.Module):
    """Scores a collated batch: (B, T) tokens + images -> (B, D) regression scores."""

    # A scorer never reads logits, so its LM head stays frozen; the critic writes text and trains it.
    trains_lm_head = False

    config_name: ClassVar[str] = CONFIG_NAME
    head_class: ClassVar[type[MultiHeadRegressor]] = MultiHeadRegressor

    def __init__(
        self,
        backbone: Backbone,
        pooling: str = "prefill",
        marker: str = FINAL_ASSESSMENT,
        head: HeadConfig | None = None,
        dims: Sequence[str] = CRITIQUE_DIMS,
        reward_weights: Sequence[float] = DEFAULT_REWARD_WEIGHTS,
        backbone_spec: dict | None = None,
    ) -> None:
        super().__init__()
        check_pooling_name(pooling)
        if len(reward_weights) != len(dims):
            raise ValueError(f"reward_weights has {len(reward_weights)} values for {len(dims)} dims {tuple(dims)}")
        self.processor = backbone.processor
        self.family = backbone.family
        self.backbone = backbone.model
        self.pooling, self.marker = pooling, marker
        self.dims = tuple(dims)
        self.head_config = head or HeadConfig()
        self.backbone_spec = backbone_spec or {"name": backbone.name}
        self.adapter_config: AdapterConfig | None = None
        self.added_tokens: list[str] = []
        # Collator budget the model was trained with (max_pixels, min_pixels, max_length); inference reuses it.
        self.input_budget: dict[str, int] = {}
        self.prompt_suffix = ""
        if pooling == "score_anchor":
            self._add_score_anchor()
        self.pooler = Pooler(pooling, self._anchor_patterns())
        self.head = self.head_class(backbone.hidden_size, len(self.dims), **asdict(self.head_config))
        # Plain numbers, not a buffer: a half-precision cast of the module would round them.
        self.reward_weight_values = tuple(float(w) for w in reward_weights)

    @property
    def reward_weights(self) -> torch.Tensor:
        """(D,) float32 weights of the scalar reward."""
        return torch.tensor(self.reward_weight_values, dtype=torch.float32)

    # --- construction -------------------------------------------------------------------
    @classmethod
    def build(
        cls, backbone: str, backbone_kwargs: dict | None = None, adapter: AdapterConfig | None = None, **kwargs: Any
    ) -> RewardModel:
        """Load the backbone by name (preset, hub id or directory) and wrap it; QLoRA loads it in 4 bits."""
        backbone_kwargs = dict(backbone_kwargs or {})
        loaded = load_backbone(backbone, **backbone_kwargs, **quantized_load_kwargs(adapter))
        return cls(loaded, backbone_spec={"name": backbone, **backbone_kwargs}, **kwargs)

    def _add_score_anchor(self) -> None:
        tokenizer = self.processor.tokenizer
        tokenizer.add_special_tokens({"additional_special_tokens": [SCORE_ANCHOR_TOKEN]})
        self.backbone.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        self.added_tokens = [SCORE_ANCHOR_TOKEN]
        self.prompt_suffix = SCORE_ANCHOR_TOKEN

    def _anchor_patterns(self) -> list[list[int]]:
        tokenizer = self.processor.tokenizer
        if self.pooling == "score_anchor":
            return [[tokenizer.convert_tokens_to_ids(SCORE_ANCHOR_TOKEN)]]
        if self.pooling == "marker":
            return marker_patterns(tokenizer, self.marker)
        return []

    def attach_adapter(self, config: AdapterConfig, total_steps: int | None = None) -> None:
        """Wrap the backbone per config (once); the head stays fully trainable."""
        if self.adapter_config is not None:
            return
        self.backbone = apply_adapter(self.backbone, config, total_steps)
        self.adapter_config = config
        if not self.trains_lm_head:
            freeze_untied_lm_head(self.backbone)

    @property
    def is_peft(self) -> bool:
        return hasattr(self.backbone, "peft_config")

    # --- scoring ------------------------------------------------------------------------
    def final_hidden_states(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B, T, H) final-layer (normed) states: what the LM head reads and the pooler pools."""
        return inner_model(self.backbone)(**model_inputs(batch), use_cache=False).last_hidden_state

    def pool(self, hidden: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """(B, T, H) -> (B, H) at the prompt's anchor."""
        return self.pooler(
            hidden, batch["attention_mask"], batch["input_ids"], batch.get("prompt_mask"), batch.get("sample_ids")
        )

    def pooled_states(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B, H) pooled final-layer states of the prompt."""
        return self.pool(self.final_hidden_states(batch), batch)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B, D) scores in `self.dims` order."""
        return self.head(self.pooled_states(batch))

    def score_shared_prefixes(self, batch: dict[str, Any]) -> torch.Tensor:
        """`forward`'s scores, with each prefix that rows share (the same images and instruction, as the G
        critiques of one GRPO prompt) run once (`models.shared_prefix`); the scoring path, not training's."""
        decoder = inner_model(self.backbone)
        hidden = shared_prefix_hidden_states(decoder, model_inputs(batch), self.backbone.config)
        return self.head(self.pool(hidden, batch))

    def weighted_reward(self, scores: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B,) scalar reward sum_d w_d * score_d (paper eq. 6 / 12)."""
        return scores.float() @ self.reward_weights.to(scores.device)

    # --- persistence --------------------------------------------------------------------
    def config_dict(self) -> dict:
        return {
            "ie_eval_version": __version__,
            "backbone": self.backbone_spec,
            "family": self.family,
            "pooling": self.pooling,
            "marker": self.marker,
            "dims": list(self.dims),
            "head": asdict(self.head_config),
            "reward_weights": list(self.reward_weight_values),
            "adapter": self.adapter_config.to_dict() if self.adapter_config else None,
            "added_tokens": self.added_tokens,
            "input_budget": self.input_budget,
        }

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write JSON config + safetensors head (+ PEFT adapter dir, or full backbone): no pickle.

        Written whole or not at all (`models.export.atomic_export`): an earlier export in `directory`
        is replaced only once this one is complete, and a failed save leaves it as it was."""
        directory = Path(directory)
        with atomic_export(directory, self.config_name) as partial:
            head = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
            save_file(head, partial / HEAD_NAME)
            if self.is_peft:
                self.backbone.save_pretrained(partial / "adapter")
            elif self.adapter_config is not None and self.adapter_config.kind == "full":
                self.backbone.save_pretrained(partial / "backbone")
                self.processor.save_pretrained(partial / "backbone")
            if self.added_tokens:
                ids = self.processor.tokenizer.convert_tokens_to_ids(self.added_tokens)
                rows = self.backbone.get_input_embeddings().weight[ids].detach().cpu().contiguous()
                save_file({"input_embeddings": rows}, partial / ADDED_EMBEDDINGS_NAME)
            # The config is the export's marker: written last, so only a complete export has one.
            (partial / self.config_name).write_text(json.dumps(self.config_dict(), indent=2))
        return directory

    @classmethod
    def saved_options(cls, config: dict) -> dict[str, Any]:
        """The constructor arguments of this class that its saved config holds beyond the shared ones."""
        return {"reward_weights": config["reward_weights"]}

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> RewardModel:
        """Rebuild exactly what `save_pretrained` wrote, in eval mode."""
        directory = check_finished_export(directory, cls.config_name, cls.__name__)
        config_path = directory / cls.config_name
        config = json.loads(config_path.read_text())
        name, spec = backbone_from_file(config["backbone"], str(config_path))
        adapter = AdapterConfig(**config["adapter"]) if config["adapter"] else None
        if adapter is not None and adapter.kind == "full":
            name = str(directory / "backbone")
            spec = {k: v for k, v in spec.items() if k in ("dtype", "attn_implementation")}
        loaded = load_backbone(name, **spec, **quantized_load_kwargs(adapter))
        model = cls(
            loaded, pooling=config["pooling"], marker=config["marker"], head=HeadConfig(**config["head"]),
            dims=config["dims"], backbone_spec=config["backbone"], **cls.saved_options(config),
        )
        if config["added_tokens"]:
            rows = load_file(directory / ADDED_EMBEDDINGS_NAME)["input_embeddings"]
            ids = model.processor.tokenizer.convert_tokens_to_ids(config["added_tokens"])
            with torch.no_grad():
                model.backbone.get_input_embeddings().weight[ids] = rows.to(model.backbone.dtype)
        if adapter is not None and adapter.kind in ("adalora", "lora", "qlora"):
            from peft import PeftModel

            model.backbone = PeftModel.from_pretrained(model.backbone, directory / "adapter")
        model.adapter_config = adapter
        model.input_budget = dict(config.get("input_budget") or {})
        model.head.load_state_dict(load_file(directory / HEAD_NAME))
        return model.to(device).eval()
