"""GRPO on the critic (paper section 5.3, appendix D.4-D.5), one step readable top to bottom:

    prompts -> sample G critiques each -> score them (RE-Reward + verifiable + format)
            -> group-normalized advantages -> ppo_epochs x (clipped surrogate + beta KL + aux Huber)

Manual optimization: a step is one rollout batch, and every policy update inside it is an
optimizer step. Old-policy and reference log-probs are computed once per rollout batch. Rewards
that cannot be had (server gone after retries) stop the run with a checkpoint: no step ever
trains on missing rewards.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from ie_eval.data.collate import EditCollator, InputBudget
from ie_eval.data.records import MOS_DIMS, EditRecord
from ie_eval.lit.common import as_config, hyperparameters
from ie_eval.lit.optim import OptimConfig, build_optimizer
from ie_eval.losses.grpo import group_advantages, grpo_loss, loss_rows, zero_std_groups
from ie_eval.losses.regression import huber_loss
from ie_eval.metrics.correlation import ScoreCorrelations
from ie_eval.metrics.factuality import Factuality
from ie_eval.metrics.pairwise import ComparisonAccuracy
from ie_eval.models.adapters import AdapterConfig
from ie_eval.rl.held_out import HeldOutEvaluation
from ie_eval.rl.objective import GRPOConfig, check_finite_rewards
from ie_eval.rl.overlap import overlapped_rollouts
from ie_eval.rl.policy import ReferencePolicy, load_sft_policy, merged_copy
from ie_eval.rl.rewards import RewardSample
from ie_eval.rl.rollout import (
    SamplingConfig,
    build_rollout_engine,
    completion_logprobs,
    completion_logprobs_and_entropy,
)
from ie_eval.rl.rollout.seeded import prompt_seeds
from ie_eval.rl.scorers import RewardSourceConfig, RewardUnavailableError, build_scorer
from ie_eval.rl.terms import build_rewards

log = logging.getLogger(__name__)


class Timer:
    """Wall time per phase of the step (generate / score / update), for the time split in the logs."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


class GRPOModule(HeldOutEvaluation, L.LightningModule):
    """GRPO fine-tuning of the SFT critic with composable rewards.

    Args:
        policy: directory written by the SFT stage (`CriticModel.save_pretrained`).
        adapter: GRPO adapter on the policy (lora / qlora: reference = adapter disabled; full: frozen copy).
        grpo / sampling / optim: see the config dataclasses.
        prompts: collator budget overrides (`InputBudget` fields); default: the SFT export's budget.
        eval_sampling / eval_samples / eval_seed: decoding of held-out critiques (default: one greedy
            critique per prompt); sampled evaluation draws `eval_samples` per prompt from a fixed seed.
        eval_blank_control: also decode the held-out prompts with both images blank and log the
            factuality of those critiques (`val/blank_factuality`: the no-vision control).
        rollout: "hf" (batched `generate`, prefill shared by the group) or "vllm".
        rollout_options: keyword options of the engine (vllm: gpu_memory_utilization, max_model_len,
            enable_sleep_mode, dtype, model_dir; hf: share_prefill).
        reward_source: RE-Reward over HTTP (`url`) or in-process (`ckpt`), with retry policy.
        rewards: list of reward components, each a dict with `name`, `weight` and its options.
    """

    def __init__(
        self,
        policy: str,
        adapter: AdapterConfig | None = None,
        grpo: GRPOConfig | None = None,
        sampling: SamplingConfig | None = None,
        eval_sampling: SamplingConfig | None = None,
        eval_samples: int = 1,
        eval_seed: int = 1234,
        eval_blank_control: bool = False,
        rollout: str = "hf",
        rollout_options: dict | None = None,
        reward_source: RewardSourceConfig | None = None,
        rewards: list[dict] | None = None,
        optim: OptimConfig | None = None,
        prompts: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.adapter_config = as_config(AdapterConfig, adapter or {"kind": "lora"})
        self.grpo = as_config(GRPOConfig, grpo)
        self.sampling = as_config(SamplingConfig, sampling)
        self.eval_sampling = as_config(SamplingConfig, eval_sampling or {"temperature": 0.0,
                                                                          "max_new_tokens": self.sampling.max_new_tokens})
        if eval_samples < 1:
            raise ValueError(f"eval_samples must be >= 1, got {eval_samples}")
        self.eval_samples, self.eval_seed = int(eval_samples), int(eval_seed)
        self.eval_blank_control = bool(eval_blank_control)
        self.reward_source = as_config(RewardSourceConfig, reward_source)
        self.optim_config = as_config(OptimConfig, optim)
        self.reward_specs = list(rewards or [{"name": "re_reward", "weight": 1.0}])
        self.model = load_sft_policy(policy, self.adapter_config)
        self.prompt_budget = InputBudget.of(self.model.input_budget, **dict(prompts or {}))
        self.save_hyperparameters(hyperparameters(
            policy=str(policy), adapter=self.adapter_config, grpo=self.grpo, sampling=self.sampling,
            eval_sampling=self.eval_sampling, eval_samples=self.eval_samples, eval_seed=self.eval_seed,
            eval_blank_control=self.eval_blank_control, rollout=rollout, rollout_options=dict(rollout_options or {}),
            reward_source=self.reward_source, rewards=self.reward_specs, optim=self.optim_config,
            prompts=self.prompt_budget,
        ))
        self.reference = ReferencePolicy(self.model)
        self.engine = build_rollout_engine(rollout, self.model, **dict(rollout_options or {}))
        self.collator = EditCollator(self.model.processor, task="critic", mode="generate",
                                     prompt_suffix=self.model.prompt_suffix, critique_format=self.model.critique_format,
                                     **self.prompt_budget.as_dict())
        self.val_head = ScoreCorrelations(MOS_DIMS)
        self.val_text = ScoreCorrelations(MOS_DIMS)
        self.val_text_overall = ScoreCorrelations(("overall",))  # the one parsed score (any critique format)
        self.val_factuality = Factuality()
        self.val_blank_factuality = Factuality()
        self.val_pairs_text, self.val_pairs_head = ComparisonAccuracy(), ComparisonAccuracy()  # GCPO prompts only
        self.rewards = None  # built in setup: a reward client is not part of the module's state

    # --- setup --------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if self.rewards is None:
            uses_re_reward = any(spec.get("type", spec.get("name")) == "re_reward" for spec in self.reward_specs)
            scorer = build_scorer(self.reward_source) if uses_re_reward else None
            self.rewards = build_rewards(self.reward_specs, scorer, guard=self.reward_source)

    def configure_optimizers(self) -> dict:
        head_ids = {id(p) for p in self.model.head.parameters()}
        backbone = [p for p in self.model.parameters() if id(p) not in head_ids]
        total = int(self.trainer.estimated_stepping_batches) * self.grpo.ppo_epochs
        return build_optimizer(backbone, self.model.head.parameters(), self.optim_config, max(1, total))

    # --- one GRPO step ------------------------------------------------------------------
    def training_step(self, batch: Iterable[EditRecord], batch_idx: int) -> None:
        records = list(batch)  # a RecordBatch from the loaders (see ie_eval.rl.prompt_data), or a list
        timer = Timer()
        prompts = self.collate(records)
        rollouts, rewards = self.sample_and_score(records, prompts, timer)
        grpo = self.grpo
        advantages = group_advantages(rewards.total, grpo.group_size, scale_by_std=grpo.scale_rewards)
        keep = loss_rows(rewards.total, rollouts.finished, grpo.group_size, filter_zero_std=grpo.filter_zero_std_groups,
                         mask_truncated=grpo.mask_truncated_completions, tolerance=grpo.zero_std_tolerance)
        # Under DDP a rank with nothing to learn still joins the backward (a zero loss) unless all have nothing.
        filtering = grpo.filter_zero_std_groups or grpo.mask_truncated_completions
        update = self.any_rank(bool(keep.any())) if filtering else True
        with timer("update"):
            stats = self.update_policy(prompts, rollouts, advantages, keep) if update else {}
        if grpo.log_zero_std_groups:
            stats["frac_reward_zero_std"] = float(zero_std_groups(rewards.total, grpo.group_size,
                                                                  grpo.zero_std_tolerance).float().mean())
        if filtering:
            stats["loss_completion_fraction"] = float(keep.float().mean())
            stats["skipped_update"] = float(not update)
        self.log_step(rewards, rollouts, stats, timer, len(records))

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return batch  # batches are EditRecords; `collate` moves the tensors it makes

    def collate(self, records: list[EditRecord]) -> dict[str, Any]:
        return move_data_to_device(self.collator(records), self.device)

    @torch.no_grad()
    def sample(self, prompts: dict[str, Any], sampling: SamplingConfig | None = None, group_size: int | None = None,
               seeds: list[int] | None = None):
        """G completions per prompt from the current policy (eval mode: no dropout while sampling)."""
        was_training = self.model.training
        self.model.eval()
        try:
            with_logprobs = sampling is None and self.grpo.log_sampling_gap  # training rollouts only
            return self.engine.generate(prompts, group_size or self.grpo.group_size, sampling or self.sampling,
                                        with_logprobs=with_logprobs, seeds=seeds)
        finally:
            self.model.train(was_training)

    def sample_and_score(self, records: list[EditRecord], prompts: dict[str, Any], timer: Timer):
        """This step's rollouts and rewards: generate all, then score (the default), or with
        `grpo.overlap_scoring_prompts` score each chunk of prompts while the next generates (`rl.overlap`).
        time/generate_s is then the pipelined generation and time/score_s the wait left after it."""
        seeds, chunk = self.rollout_seeds(records), self.grpo.overlap_scoring_prompts
        if not chunk or chunk >= len(records):
            with timer("generate"):
                rollouts = self.sample(prompts, seeds=seeds)
            with timer("score"):
                return rollouts, self.score(records, rollouts, stage="train")

        def generate(rows: range):
            chunk_seeds = None if seeds is None else [seeds[i] for i in rows]
            return self.sample(self.collate([records[i] for i in rows]), seeds=chunk_seeds)

        with timer("generate"):
            rollouts, samples, finish = overlapped_rollouts(records, chunk, generate, self.reward_samples,
                                                            self.rewards.prefetch, self.model.pad_token_id)
        with timer("score"):
            finish()
            return rollouts, self.score(records, rollouts, stage="train", samples=samples)

    def rollout_seeds(self, records: list[EditRecord]) -> list[int] | None:
        """Per-prompt seeds of this step's rollouts when `sampling.seed` is set (rank- and batch-independent)."""
        if self.sampling.seed is None:
            return None
        return prompt_seeds(self.sampling.seed, self.global_step, [r.pair_id for r in records])

    def reward_samples(self, records: list[EditRecord], rollouts: Any) -> list[RewardSample]:
        return [RewardSample.from_record(records[int(p)], text, self.model.critique_format)
                for p, text in zip(rollouts.prompt_index.tolist(), rollouts.texts, strict=True)]

    def score(self, records: list[EditRecord], rollouts: Any, stage: str, samples: list[RewardSample] | None = None):
        """Composite reward per completion (of `samples`, if given: those already prefetched). If any rank
        could not get its rewards (reward model unreachable, refusing, non-finite or wrong-count scores),
        every rank stops at this point after one emergency checkpoint, with the cause and the resume command."""
        samples = self.reward_samples(records, rollouts) if samples is None else samples
        failure: RewardUnavailableError | None = None
        try:
            rewards = self.rewards(samples)
            check_finite_rewards(rewards.total)
        except RewardUnavailableError as err:
            failure, rewards = err, None
        if self.any_rank(failure is not None):
            path = self.save_emergency_checkpoint()
            cause = f"{failure.cause}: {failure}" if failure is not None else "another rank's rewards failed"
            raise RewardUnavailableError(
                f"{stage} step {self.global_step}: no rewards ({cause}); nothing was trained on this batch. "
                f"Checkpoint written to {path}; fix the reward model or server, then resume with "
                f"`ie-eval grpo <same arguments> --ckpt-path {path}`",
                failure.cause if failure is not None else "unreachable",
            ) from failure
        return rewards

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on any (a no-op outside distributed runs)."""
        if self._trainer is None:
            return flag
        return bool(self.trainer.strategy.reduce_boolean_decision(flag, all=False))

    def save_emergency_checkpoint(self) -> Path | None:
        """`reward-failure.ckpt` under the run's checkpoints (the strategy writes it from rank 0)."""
        if self._trainer is None:
            return None
        path = Path(self.trainer.default_root_dir) / "checkpoints" / "reward-failure.ckpt"
        self.trainer.save_checkpoint(path)
        return path

    def update_policy(
        self, prompts: dict[str, Any], rollouts: Any, advantages: torch.Tensor, keep: torch.Tensor | None = None
    ) -> dict[str, float]:
        """ppo_epochs optimizer steps on one rollout batch: clipped surrogate + beta KL + auxiliary Huber.

        keep: (N,) bool, the completions whose tokens enter the policy loss (`loss_rows`; None: all).
        The old policy is the policy before the first update, so its log-probs are the first epoch's,
        detached: no extra forward pass, and a ratio of exactly 1 on the first update (as in TRL).
        """
        ids, mask, group = rollouts.completion_ids, rollouts.completion_mask, self.grpo.group_size
        temperature = self.sampling.temperature or 1.0  # log-probs of the distribution that was sampled
        micro, chunk = self.grpo.logprob_micro_batch, self.grpo.logprob_chunk_tokens
        with torch.no_grad():
            ref_logp = None
            if self.grpo.beta != 0.0:
                with self.reference.active() as reference:
                    ref_logp = completion_logprobs(reference, prompts, ids, mask, group, temperature, micro, chunk_tokens=chunk)
            needs_weak = self.grpo.aux_weak_weight > 0 and not bool(prompts["mos_mask"].all())
            weak_targets = self.reference.head_scores(prompts) if needs_weak else None
        old_logp = None
        optimizer, scheduler = self.optimizers(), self.lr_schedulers()
        totals: dict[str, float] = defaultdict(float)
        for epoch in range(self.grpo.ppo_epochs):
            if epoch == 0:
                logp, entropy = completion_logprobs_and_entropy(self.model, prompts, ids, mask, group, temperature, micro,
                                                                chunk_tokens=chunk)
                totals["entropy"] = float((entropy.detach() * mask).sum() / mask.sum().clamp(min=1))
                old_logp = logp.detach()
                if rollouts.sampling_logp is not None:  # the engine's and the trainer's view of the same tokens
                    gap = (old_logp - rollouts.sampling_logp.to(old_logp)).abs() * mask
                    totals["sampling_logp_gap"] = float(gap.sum() / mask.sum().clamp(min=1))
            else:
                logp = completion_logprobs(self.model, prompts, ids, mask, group, temperature, micro, chunk_tokens=chunk)
            loss_mask = mask if keep is None else mask * keep.to(mask.device, mask.dtype).unsqueeze(1)
            policy = grpo_loss(
                logp, old_logp, ref_logp, advantages.to(logp.device), loss_mask, clip_eps_low=self.grpo.clip_eps,
                clip_eps_high=self.grpo.clip_eps_high, beta=self.grpo.beta, aggregation=self.grpo.aggregation,
                importance_sampling=self.grpo.importance_sampling, kl_ratio_weighted=self.grpo.kl_ratio_weighted,
                max_completion_length=self.sampling.max_new_tokens,
            )
            aux = self.auxiliary_huber(prompts, weak_targets)
            loss = policy.loss + aux["aux_huber"]
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            if self.grpo.max_grad_norm > 0:
                self.clip_gradients(optimizer, gradient_clip_val=self.grpo.max_grad_norm, gradient_clip_algorithm="norm")
            optimizer.step()
            scheduler.step()
            for name, value in {"loss": loss, **policy.metrics(), **aux}.items():
                totals[name] += float(torch.as_tensor(value).detach()) / self.grpo.ppo_epochs
        self.engine.sync_weights()
        return dict(totals)

    def auxiliary_huber(self, prompts: dict[str, Any], weak_targets: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Huber of the head against MOS where a prompt has it (strong), else the SFT head's scores (weak)."""
        scores = self.model(prompts)
        has_mos = prompts["mos_mask"].bool()
        strong = huber_loss(scores, torch.nan_to_num(prompts["mos"]).to(scores), self.grpo.huber_delta, has_mos)
        weak = scores.sum() * 0.0 if weak_targets is None else huber_loss(
            scores, weak_targets.to(scores), self.grpo.huber_delta, ~has_mos
        )
        total = self.grpo.aux_weight * strong + self.grpo.aux_weak_weight * weak
        return {"aux_huber": total, "aux_huber_strong": strong.detach(), "aux_huber_weak": weak.detach()}

    def log_step(self, rewards: Any, rollouts: Any, stats: dict[str, float], timer: Timer, prompts: int) -> None:
        lengths = rollouts.lengths.float()
        values = {
            **rewards.metrics(prefix="train/reward_"),
            "train/reward_refused_items": self.rewards.refused_items(),  # since the run (re)started
            "train/response_length": lengths.mean(), "train/response_length_max": lengths.max(),
            **{f"train/{k}": v for k, v in stats.items()},
            **{f"time/{k}_s": v for k, v in timer.seconds.items()},
        }
        longest = values.pop("train/response_length_max")
        # Every rank logs the same keys; the logged value is the mean over ranks (the longest: their max).
        self.log_dict({k: torch.as_tensor(v, dtype=torch.float32) for k, v in values.items()},
                      on_step=True, on_epoch=False, batch_size=prompts, prog_bar=False, sync_dist=True)
        self.log("train/response_length_max", longest, on_step=True, on_epoch=False, batch_size=prompts,
                 sync_dist=True, reduce_fx="max")
        self.log("reward", rewards.total.mean(), prog_bar=True, on_step=True, on_epoch=False, batch_size=prompts,
                 sync_dist=True)

    # --- export ---------------------------------------------------------------------------
    def export_pretrained(self, directory: str | Path) -> Path:
        """The trained critic with its GRPO adapter merged: `CriticModel.from_pretrained(dir)` loads it alone."""
        return merged_copy(self.model).save_pretrained(directory)
