"""The GRPO policy: the SFT critic plus a fresh adapter, its reference, and a self-contained export.

The reference model of GRPO is the policy at the start of RL (the SFT critic). With a LoRA/QLoRA
policy it costs nothing: the same backbone with the GRPO adapter disabled. An SFT export that is
itself a PEFT adapter is merged into its base first, so "adapter disabled" means the SFT critic and
not the pre-SFT base. With full fine-tuning there is no adapter to disable, so a frozen copy is kept.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from ie_eval.models.adapters import AdapterConfig
from ie_eval.models.critic import CriticModel
from ie_eval.models.heads import MultiHeadRegressor
from ie_eval.rl.rollout.logprobs import frozen_copy, reference_mode

PEFT_KINDS = ("lora", "qlora", "adalora")


def load_sft_policy(directory: str | Path, adapter: AdapterConfig) -> CriticModel:
    """The SFT critic from `save_pretrained` output, in train mode, with the GRPO `adapter` attached.

    adapter.kind: lora / qlora (reference = adapter disabled) or full (reference = frozen copy).
    """
    if adapter.kind == "adalora":
        raise ValueError("GRPO adapter kind must be lora, qlora or full; AdaLoRA's rank schedule is an SFT/RM tool")
    model = CriticModel.from_pretrained(directory)
    if model.is_peft:
        model.backbone = model.backbone.merge_and_unload()
    model.adapter_config = None
    model.attach_adapter(adapter)
    return model.train()


class ReferencePolicy(nn.Module):
    """Reference log-probs and head scores of the policy at the start of RL.

    PEFT policy: no second copy of the backbone; `active()` disables the adapter for the duration.
    Full fine-tuning: a frozen deep copy. Either way the initial regression head is snapshotted
    (it is small), because the head keeps training and its starting scores are the weak targets.
    """

    def __init__(self, policy: CriticModel) -> None:
        super().__init__()
        self.shares_backbone = policy.is_peft
        frozen = None if self.shares_backbone else frozen_copy(policy)
        # Kept out of the module tree so it is neither checkpointed twice nor moved by optimizers.
        self._frozen = [frozen] if frozen is not None else []
        self._policy = [policy]
        self.head: MultiHeadRegressor = copy.deepcopy(policy.head).eval().requires_grad_(False)

    @contextmanager
    def active(self) -> Iterator[CriticModel]:
        """Yields a model whose forward passes are the reference's (adapter off, or the frozen copy)."""
        with reference_mode(self._policy[0], self._frozen[0] if self._frozen else None) as model:
            yield model

    def _apply(self, fn, *args, **kwargs):
        # `.to()` / `.cuda()` / `.half()` on the LightningModule reach children through `_apply`;
        # the frozen copy lives outside the module tree, so it is moved here explicitly.
        if self._frozen:
            self._frozen[0]._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    @torch.no_grad()
    def head_scores(self, prompt_batch: dict) -> torch.Tensor:
        """(P, 3) the SFT critic's regression scores for the prompts: weak targets for the auxiliary Huber."""
        with self.active() as model:
            return self.head(model.pooled_states(prompt_batch))


def merged_copy(policy: CriticModel) -> CriticModel:
    """A copy of the policy with its GRPO adapter merged, saved as a full model: loadable on its own."""
    merged = copy.deepcopy(policy)
    if merged.is_peft:
        merged.backbone = merged.backbone.merge_and_unload()
    merged.adapter_config = AdapterConfig(kind="full")
    return merged.eval()
