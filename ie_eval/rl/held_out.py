"""Held-out evaluation of the GRPO critic: seeded critiques of the val / test prompts, their rewards, the
head's and the parsed scores' correlations with MOS, factuality (with and without the images) and, on
GCPO comparison prompts, which edit the critiques prefer. A mixin of `GRPOModule`: it uses the module's
`sample`, `score`, `collate` and metrics."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ie_eval.data.datamodule import blank_images
from ie_eval.data.pairwise import comparison_credits, comparison_tag
from ie_eval.data.phased import record_facts
from ie_eval.data.records import EditRecord, overall_mos
from ie_eval.metrics.correlation import ScoreCorrelations
from ie_eval.metrics.critique import updated_anywhere
from ie_eval.rl.rollout.seeded import prompt_seeds


class HeldOutEvaluation:
    """validation / test steps of `GRPOModule`."""

    def validation_step(self, batch: Iterable[EditRecord], batch_idx: int) -> None:
        self.evaluate(list(batch), "val", self.val_head, self.val_text)

    def on_validation_epoch_end(self) -> None:
        self.log_correlations("val", self.val_head, self.val_text)

    def test_step(self, batch: Iterable[EditRecord], batch_idx: int) -> None:
        self.evaluate(list(batch), "test", self.val_head, self.val_text)

    def on_test_epoch_end(self) -> None:
        self.log_correlations("test", self.val_head, self.val_text)

    def seeded_rollouts(self, prompts: dict[str, Any], records: list[EditRecord]) -> Any:
        """`eval_samples` critiques per prompt, each prompt's from its own generator seeded by `eval_seed` and
        its id: the same draws at every checkpoint, whatever the evaluation batch size or number of ranks."""
        seeds = prompt_seeds(self.eval_seed, 0, [r.pair_id for r in records])
        return self.sample(prompts, self.eval_sampling, group_size=self.eval_samples, seeds=seeds)

    def evaluate(self, records: list[EditRecord], stage: str, head: ScoreCorrelations, text: ScoreCorrelations) -> None:
        """Mean reward of `eval_samples` critiques per held-out prompt (seeded, so the SFT start and later
        checkpoints are judged on the same draws), head SRCC, SRCC of the group-mean parsed scores, and the
        critiques' factuality where the prompts carry synthetic facts (with and without the images)."""
        prompts = self.collate(records)
        group = self.eval_samples
        rollouts = self.seeded_rollouts(prompts, records)
        facts = [record_facts(r) for r in records]
        rows = rollouts.prompt_index.tolist()
        self.val_factuality.update(rollouts.texts, [facts[i] for i in rows])
        if self.eval_blank_control and any(facts):
            blank = self.seeded_rollouts(self.collate(blank_images(records, self.blank_image_path())), records)
            self.val_blank_factuality.update(blank.texts, [facts[i] for i in blank.prompt_index.tolist()])
        rewards = self.score(records, rollouts, stage=stage)
        size = len(records)
        self.log(f"{stage}/reward_mean", rewards.total.mean(), batch_size=size, prog_bar=True, sync_dist=True)
        for name, component in rewards.components.items():
            self.log(f"{stage}/reward_{name}_mean", torch.as_tensor(component.mean), batch_size=size, sync_dist=True)
        self.log(f"{stage}/response_length", rollouts.lengths.float().mean(), batch_size=size, sync_dist=True)
        parsed = torch.tensor([list(s.parsed_scores) if s.parsed_scores is not None else [math.nan] * 3
                               for s in rewards.samples], dtype=torch.float32, device=self.device)
        overall = self.nan_filled([s.parsed.overall for s in rewards.samples])
        self.log(f"{stage}/format_rate", (~overall.isnan()).float().mean(), batch_size=size, sync_dist=True)
        with torch.no_grad():
            head_scores = self.model(prompts).float()
        per_prompt = parsed.reshape(size, group, -1).nanmean(dim=1)  # (P, 3); NaN where nothing parsed
        per_prompt_overall = overall.reshape(size, group).nanmean(dim=1)  # (P,)
        if any(comparison_tag(r) for r in records):  # which of two edits the critiques prefer (GCPO)
            self.val_pairs_text.update(comparison_credits(records, per_prompt_overall))
            self.val_pairs_head.update(comparison_credits(records, head_scores.mean(dim=1)))
        truth = self.nan_filled([overall_mos(r) for r in records])  # three MOS' mean, or the one MOS
        keep = ~truth.isnan() & ~per_prompt_overall.isnan()
        if keep.any():
            self.val_text_overall.update(per_prompt_overall[keep, None], truth[keep, None])
        has_mos = prompts["mos_mask"].bool()
        if has_mos.any():
            mos = prompts["mos"].float()
            head.update(head_scores[has_mos], mos[has_mos])
            keep = has_mos & ~per_prompt.isnan().any(dim=1)
            if keep.any():
                text.update(per_prompt[keep], mos[keep])

    def nan_filled(self, values: list[float | None]) -> torch.Tensor:
        return torch.tensor([math.nan if v is None else v for v in values], dtype=torch.float32, device=self.device)

    def log_correlations(self, stage: str, head: ScoreCorrelations, text: ScoreCorrelations) -> None:
        metrics = (("head", head), ("text", text), ("text_", self.val_text_overall), ("", self.val_factuality),
                   ("blank_", self.val_blank_factuality), ("text_", self.val_pairs_text), ("head_", self.val_pairs_head))
        # Every rank computes (gathers) the same metrics, whichever of them its own prompts updated.
        updated = updated_anywhere({str(i): metric for i, (_, metric) in enumerate(metrics)})
        for index, (prefix, metric) in enumerate(metrics):
            if updated[str(index)]:
                for name, value in metric.compute().items():
                    if metric is self.val_text_overall and not name.startswith("overall_"):
                        continue  # its mean_* is overall_* again, and text_mean_* is the per-dim mean's
                    prefixed = f"{prefix}_{name}" if prefix in ("head", "text") else f"{prefix}{name}"
                    if torch.isfinite(value):
                        self.log(f"{stage}/{prefixed}", value.float())
            metric.reset()

    def blank_image_path(self) -> Path:
        """A mid-gray PNG for the no-vision control, written once under the run directory."""
        path = Path(self.trainer.default_root_dir if self._trainer is not None else ".") / "blank.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (64, 64), (128, 128, 128)).save(path)
        return path

