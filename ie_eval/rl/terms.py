"""The terms of GRPO's composite reward, each a `RewardTerm` with `__call__(samples) -> (N,) tensor`.

- `ReRewardTerm`: RE-Reward's critique scores, r = w_L * logicality + w_A * accuracy + w_U * usefulness
  (paper eq. 6 / 12), from any `RewardScorer` (`RewardScoring` in-process or `RewardClient` over
  HTTP), with GRPO's one retry layer.
- `MosScoreTerm`: verifiable score reward of the parsed text scores against MOS (IE-Critic-R1).
- `FormatTerm`: 1 if the critique has the required structure, else 0.
- `WinRatioTerm`: GCPO's win ratio (Edit-R1) of a trace's parsed score against the other side's traces.

`build_rewards(config, scorer)` builds a CompositeReward from a list of dicts such as
`[{"name": "re_reward", "weight": 1.0, "weights": {...}}, {"name": "mos_l1", "type": "mos", "weight": 0.5,
"kind": "l1"}, {"name": "format", "weight": 0.1}]` (`type` defaults to `name`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch

from ie_eval.data.pairwise import comparison_sides
from ie_eval.data.prompts import SCORE_RANGE
from ie_eval.data.records import CRITIQUE_DIMS
from ie_eval.losses.gcpo import win_ratio_rewards
from ie_eval.rl.rewards import CompositeReward, RewardSample, RewardTerm
from ie_eval.rl.scorers import RewardUnavailableError, ScoringGuard, check_scores, refused_item
from ie_eval.serve.base import RewardItem, RewardScorer, RewardScores, RewardServerError

log = logging.getLogger(__name__)

MOS_KINDS: tuple[str, ...] = ("l1", "gaussian", "laplace", "ie_critic_l1", "ie_critic_gaussian", "ie_critic_laplace")
IE_CRITIC_R_MIN = 0.05  # IE-Critic-R1's reward floor, reached at a one-point difference
MOS_SCALES: tuple[str, ...] = ("probit", "text")


class ReRewardTerm(RewardTerm):
    """RE-Reward score r = sum_k w_k * score_k over (logicality, accuracy, usefulness), from a `RewardScorer`
    (`RewardScoring` in-process or `RewardClient` over HTTP), through GRPO's one retry layer.

    weights: {dim: w}; None takes the scorer's own weighted `reward` (the server's weights).
    guard: retries within a deadline, critique truncation, and the penalty of an item the scorer
    still refuses (HTTP 4xx naming `items.<i>`); the HTTP client itself makes one attempt per call.
    Every other failure raises `RewardUnavailableError` naming its cause: no partial or zero
    rewards are invented. A blank completion cannot be scored (scorers refuse blank critiques);
    it gets the lowest reward of the batch, so it is never preferred over a written critique.
    """

    def __init__(
        self, scorer: RewardScorer, weights: Mapping[str, float] | None = None, guard: ScoringGuard | None = None
    ) -> None:
        if weights is not None:
            unknown, missing = sorted(set(weights) - set(CRITIQUE_DIMS)), sorted(set(CRITIQUE_DIMS) - set(weights))
            if unknown or missing:
                raise ValueError(f"ReRewardTerm weights need exactly {CRITIQUE_DIMS}; unknown {unknown}, missing {missing}")
        self.scorer = scorer
        self.weights = None if weights is None else {dim: float(weights[dim]) for dim in CRITIQUE_DIMS}
        self.guard = guard or ScoringGuard()
        self.refused_items = 0  # items scored with the penalty since construction
        # id(sample) -> (sample, its scores). Written by one worker thread, read by `__call__` only after GRPO
        # has waited for that worker (`overlap.overlapped_rollouts`' finish), so no two threads share it at once.
        self._prefetched: dict[int, tuple[RewardSample, RewardScores]] = {}
        self._step_deadline: float | None = None  # set by a step's first prefetch, ended by the next call

    def prefetch(self, samples: Sequence[RewardSample]) -> None:
        """Score these samples' critiques ahead of `__call__` (GRPO calls it from a worker thread while the
        next prompts generate); `__call__` on the same sample objects then reuses the scores. A failure
        keeps nothing: `__call__` scores those samples itself and raises in the trainer's thread."""
        written = [s for s in samples if s.completion.strip()]
        refused_before = self.refused_items
        if self._step_deadline is None:  # the step's first chunk: its deadline covers every chunk and the call
            self._step_deadline = time.monotonic() + self.guard.deadline_s
        try:
            scores = self.score([self.item(s) for s in written], deadline=self._step_deadline)
        except RewardUnavailableError:
            self.refused_items = refused_before  # `__call__` scores (and counts) these samples again
            return
        self._prefetched.update({id(s): (s, score) for s, score in zip(written, scores, strict=True)})

    @staticmethod
    def item(sample: RewardSample) -> RewardItem:
        return RewardItem(sample.source_image, sample.edited_image, sample.instruction, sample.completion)

    def __call__(self, samples: Sequence[RewardSample]) -> torch.Tensor:
        written = [i for i, s in enumerate(samples) if s.completion.strip()]
        prefetched, self._prefetched = self._prefetched, {}  # a prefetch serves only the next call
        deadline, self._step_deadline = self._step_deadline, None
        scores = {i: prefetched[id(samples[i])][1] for i in written
                  if prefetched.get(id(samples[i]), (None,))[0] is samples[i]}
        missing = [i for i in written if i not in scores]
        rescored = self.score([self.item(samples[i]) for i in missing], deadline=deadline) if missing else []
        scores.update(zip(missing, rescored, strict=True))
        values = [self.combine(scores[i].as_dict()) for i in written]
        out = torch.full((len(samples),), min(values, default=0.0), dtype=torch.float32)
        out[written] = torch.tensor(values, dtype=torch.float32)
        return out

    def combine(self, scores: Mapping[str, float]) -> float:
        if self.weights is None:
            return float(scores["reward"])
        return sum(w * float(scores[dim]) for dim, w in self.weights.items())

    def score(self, items: Sequence[RewardItem], deadline: float | None = None) -> list[RewardScores]:
        """One finite `RewardScores` per item (refused items: the penalty), or `RewardUnavailableError`.
        deadline: a `time.monotonic()` time shared with earlier calls of the step (None: deadline_s from now)."""
        guard = self.guard
        deadline = time.monotonic() + guard.deadline_s if deadline is None else deadline
        sendable = [replace(i, critique=i.critique[: guard.max_critique_chars]) for i in items]
        results: list[RewardScores | None] = [None] * len(items)
        pending = list(range(len(items)))
        while pending:
            try:
                scores = self.call_scorer(deadline, [sendable[i] for i in pending])
            except RewardUnavailableError:
                raise
            except RewardServerError as err:
                index = refused_item(err, len(pending))
                if index is None:
                    raise RewardUnavailableError(f"the reward model refused the request: {err}", "refused",
                                                 err.status, err.field) from err
                refused = pending.pop(index)
                log.warning("reward server refused item %d (%s); scoring it %s", refused, err, guard.refused_penalty)
                value = guard.refused_penalty
                results[refused] = RewardScores(value, value, value, value)
                self.refused_items += 1
                continue
            check_scores(scores, len(pending))
            for position, score in zip(pending, scores, strict=True):
                results[position] = score
            pending = []
        return [r for r in results if r is not None]

    def call_scorer(self, deadline: float, items: list[RewardItem]) -> list[RewardScores]:
        """The scorer, retried on failures other than a refusal, within `attempts` and the deadline."""
        guard = self.guard
        last: RewardServerError | None = None
        for attempt in range(1, guard.attempts + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                if hasattr(self.scorer, "score_within"):
                    return self.scorer.score_within(items, remaining)
                return self.scorer.score(items)
            except RewardServerError as err:
                if err.status is not None and 400 <= err.status < 500:
                    raise
                if err.cause is not None:  # an answer came back, and it is wrong: retrying will not fix it
                    raise RewardUnavailableError(str(err), err.cause, err.status, err.field) from err
                last = err
                log.warning("reward scoring failed (attempt %d/%d): %s", attempt, guard.attempts, err)
                pause = min(guard.backoff_s * 2 ** (attempt - 1), max(0.0, deadline - time.monotonic()))
                if attempt < guard.attempts and pause > 0:
                    time.sleep(pause)
        raise RewardUnavailableError(
            f"no rewards within {guard.attempts} attempts / deadline_s={guard.deadline_s}; last error: {last}",
            "unreachable", getattr(last, "status", None),
        ) from last


def ie_critic_r1_accuracy(pred: torch.Tensor, truth: torch.Tensor, kind: str = "l1",
                          score_range: tuple[float, float] = SCORE_RANGE) -> torch.Tensor:
    """IE-Critic-R1's accuracy reward of predicted vs true scores on the 1-5 scale
    (`examples/score_function/ie_critic_r1.py`): with e = |p - g|,

        l1:        max(0.05, 1 - 0.95 e)
        gaussian:  max(0.05, exp(-d^2 / (2 s^2))),  d = e / 4, s = 0.25 / sqrt(2 ln 20)   (= 0.05 ** e^2)
        laplace:   max(0.05, exp(-d / t)),          d = e / 4, t = 0.25 / ln 20          (= 0.05 ** e)

    so every kernel gives 0.05 at a one-point difference and never less; a prediction outside the
    score range (or not finite) gets 0.
    """
    low, high = score_range
    error = (pred - truth).abs()
    if kind == "l1":
        reward = 1 - (1 - IE_CRITIC_R_MIN) * error
    else:
        d, d0 = error / (high - low), 0.25
        if kind == "gaussian":
            s = d0 / math.sqrt(2 * math.log(1 / IE_CRITIC_R_MIN))
            reward = torch.exp(-(d**2) / (2 * s**2))
        elif kind == "laplace":
            reward = torch.exp(-d / (d0 / math.log(1 / IE_CRITIC_R_MIN)))
        else:
            raise ValueError(f"unknown IE-Critic-R1 kernel {kind!r}; choose l1, gaussian or laplace")
    reward = reward.clamp(min=IE_CRITIC_R_MIN)
    valid = torch.isfinite(pred) & (pred >= low) & (pred <= high)
    return torch.where(valid, reward, torch.zeros_like(reward))


def mos_to_text_scale(mos: torch.Tensor, scale: str = "probit", score_range: tuple[float, float] = SCORE_RANGE) -> torch.Tensor:
    """MOS targets -> the critique's score scale [low, high], so text scores and MOS compare like with like.

    "probit": targets are Phi^-1(percentile) (ECDF-probit, data/normalize.py), so the text-scale
        value is low + (high - low) * Phi(mos): the percentile spread over the score range.
    "text": targets already are on the critique's scale (e.g. raw mean ratings on 1..5).
    """
    if scale not in MOS_SCALES:
        raise ValueError(f"unknown mos_scale {scale!r}; choose one of {MOS_SCALES}")
    if scale == "text":
        return mos
    low, high = score_range
    return low + (high - low) * torch.special.ndtr(mos)


class MosScoreTerm(RewardTerm):
    """Verifiable score reward of the parsed final-assessment scores against MOS (IE-Critic-R1).

    With d_k = pred_k - mos_k on the text scale (`mos_to_text_scale`), averaged over the 3 dims:
        l1:        1 - |d_k| / (high - low)         in [0, 1]
        gaussian:  exp(-d_k^2 / (2 sigma^2))        in (0, 1]
        laplace:   exp(-|d_k| / b)                  in (0, 1]
    ie_critic_{l1,gaussian,laplace}: IE-Critic-R1's own kernels (`ie_critic_r1_accuracy`) on the
        overall score (`ParsedCritique.overall`: the think_answer answer, or the mean of the three
        parsed scores) against the overall truth on the text scale (the sample's single MOS when its
        dataset has one, else the mean of the three MOS).
    A completion whose scores do not parse gets 0, the minimum of every kind (the per-dim kinds
    need the sections format's three scores). Samples without a truth get 0 and are outside
    `applies` (their mean is not logged).
    """

    def __init__(
        self,
        kind: str = "l1",
        *,
        sigma: float | None = None,
        b: float | None = None,
        mos_scale: str = "probit",
        score_range: Sequence[float] = SCORE_RANGE,
    ) -> None:
        if kind not in MOS_KINDS:
            raise ValueError(f"unknown MOS reward kind {kind!r}; choose one of {MOS_KINDS}")
        if kind == "gaussian" and not (sigma and sigma > 0):
            raise ValueError("MosScoreTerm(kind='gaussian') needs sigma > 0")
        if kind == "laplace" and not (b and b > 0):
            raise ValueError("MosScoreTerm(kind='laplace') needs b > 0")
        if mos_scale not in MOS_SCALES:
            raise ValueError(f"unknown mos_scale {mos_scale!r}; choose one of {MOS_SCALES}")
        self.kind, self.sigma, self.b, self.mos_scale = kind, sigma, b, mos_scale
        self.score_range = (float(score_range[0]), float(score_range[1]))

    @property
    def overall(self) -> bool:
        return self.kind.startswith("ie_critic_")

    def applies(self, samples: Sequence[RewardSample]) -> torch.Tensor:
        return torch.tensor([s.mos is not None or (self.overall and s.mos_overall is not None) for s in samples],
                            dtype=torch.bool)

    def text_scale(self, values: Sequence) -> torch.Tensor:
        return mos_to_text_scale(torch.tensor(values, dtype=torch.float64), self.mos_scale, self.score_range)

    def overall_truth(self, sample: RewardSample) -> float:
        if sample.mos_overall is not None:
            return float(self.text_scale([sample.mos_overall])[0])
        return float(self.text_scale(sample.mos).mean())

    def __call__(self, samples: Sequence[RewardSample]) -> torch.Tensor:
        out = torch.zeros(len(samples), dtype=torch.float32)
        applies = self.applies(samples).tolist()
        if self.overall:
            rows = [i for i, s in enumerate(samples) if applies[i] and s.parsed.overall is not None]
            if rows:
                pred = torch.tensor([samples[i].parsed.overall for i in rows], dtype=torch.float64)
                truth = torch.tensor([self.overall_truth(samples[i]) for i in rows], dtype=torch.float64)
                out[rows] = ie_critic_r1_accuracy(pred, truth, self.kind.removeprefix("ie_critic_"),
                                                  self.score_range).float()
            return out
        rows = [i for i, s in enumerate(samples) if s.mos is not None and s.parsed_scores is not None]
        if not rows:
            return out
        pred = torch.tensor([samples[i].parsed_scores for i in rows], dtype=torch.float64)
        d = pred - self.text_scale([samples[i].mos for i in rows])  # (n, 3)
        if self.kind == "l1":
            per_dim = 1 - d.abs() / (self.score_range[1] - self.score_range[0])
        elif self.kind == "gaussian":
            per_dim = torch.exp(-(d**2) / (2 * self.sigma**2))
        else:
            per_dim = torch.exp(-d.abs() / self.b)
        out[rows] = per_dim.mean(dim=1).float()
        return out


class FormatTerm(RewardTerm):
    """1 if the critique parses into the required structure, else 0.

    require="structured": the critique format's full structure (`ParsedCritique.structured`: every
    dimension's observations section and all three final scores; for think_answer, IE-Critic-R1's
    format reward, a full match of `<think>.*?</think>\\s*<answer>.*?</answer>`); "parsed": the
    score(s) alone (`ParsedCritique.parsed`).
    """

    def __init__(self, require: str = "structured") -> None:
        if require not in ("structured", "parsed"):
            raise ValueError(f"FormatTerm require must be 'structured' or 'parsed', got {require!r}")
        self.require = require

    def __call__(self, samples: Sequence[RewardSample]) -> torch.Tensor:
        return torch.tensor([float(getattr(s.parsed, self.require)) for s in samples], dtype=torch.float32)


class WinRatioTerm(RewardTerm):
    """GCPO (Edit-R1): a trace's reward is its win ratio against the other side's traces of its comparison.

    Samples carry `comparison = (id, role)`: the N traces of the preferred edit and the N of the
    rejected one (`win_ratio_rewards`). A trace's score tau is the mean of its parsed
    final-assessment scores; a trace that does not parse wins no comparison and counts as neither
    win nor loss for the traces it is compared with. Samples outside a comparison get 0 and do not
    apply.
    """

    def applies(self, samples: Sequence[RewardSample]) -> torch.Tensor:
        return torch.tensor([s.comparison is not None for s in samples], dtype=torch.bool)

    def __call__(self, samples: Sequence[RewardSample]) -> torch.Tensor:
        sides = comparison_sides([s.comparison for s in samples])
        tau = torch.tensor([math.nan if s.parsed.overall is None else s.parsed.overall for s in samples])
        out = torch.zeros(len(samples), dtype=torch.float32)
        for comparison, members in sides.items():
            preferred, rejected = members["preferred"], members["rejected"]
            if not preferred or not rejected:
                raise ValueError(f"comparison '{comparison}': traces of both sides are needed, got "
                                 f"{len(preferred)} preferred and {len(rejected)} rejected")
            wins, losses = win_ratio_rewards(tau[preferred].unsqueeze(0), tau[rejected].unsqueeze(0))
            out[preferred], out[rejected] = wins[0], losses[0]
        return out


REWARD_TYPES: dict[str, type[RewardTerm]] = {
    "re_reward": ReRewardTerm, "mos": MosScoreTerm, "format": FormatTerm, "win_ratio": WinRatioTerm,
}


def build_rewards(
    config: Sequence[Mapping[str, Any]], scorer: RewardScorer | None = None, guard: ScoringGuard | None = None
) -> CompositeReward:
    """CompositeReward from config dicts {name, weight, type (default: name), **options of the class}.

    `scorer` serves the "re_reward" components, inside `guard` (the run's `reward_source`);
    a config that uses one without a scorer fails here.
    """
    components = []
    for index, spec in enumerate(config):
        options = dict(spec)
        name = options.pop("name", None)
        if not name or "weight" not in options:
            raise ValueError(f"rewards[{index}]: each reward needs a `name` and a `weight`, got {dict(spec)}")
        weight = float(options.pop("weight"))
        kind = options.pop("type", name)
        if kind not in REWARD_TYPES:
            raise ValueError(f"rewards[{index}] '{name}': unknown type {kind!r}; choose one of {sorted(REWARD_TYPES)}")
        if kind == "re_reward":
            if scorer is None:
                raise ValueError(f"rewards[{index}] '{name}': an RE-Reward component needs a reward scorer")
            options.update(scorer=scorer, guard=guard)
        try:
            reward = REWARD_TYPES[kind](**options)
        except TypeError as err:
            raise ValueError(f"rewards[{index}] '{name}' ({kind}): {err}") from err
        components.append((name, weight, reward))
    return CompositeReward(components)
