"""The peers' own evaluation metrics, as their public code computes them, for numbers that sit in their tables.

IE-Critic-R1 (`Coobiw/IE-Critic-R1`, scripts/iebench_eval.py):
    PLCC after a 4-parameter logistic fit from predictions to MOS,
        yhat = b2 + (b1 - b2) / (1 + exp(-(x - b3) / |b4|)),  p0 = [max mos, min mos, mean pred, 0.5];
    SRCC on the raw predictions; MainScore = (PLCC + SRCC) / 2. A response whose score does not
    parse is dropped from both lists (`ie_critic_answer` is their parser).
EditReward (`TIGER-AI-Lab/EditReward`, evaluate/eval_bench.py): per pair, the human sign h in
    {1, -1, 0} and the score difference m; at tie threshold eps the pair is Thm (h = 0, |m| <= eps),
    Th (h = 0), Tm (h != 0, |m| <= eps), C (h m > 0) or D (the rest), and
        accuracy(eps) = (C + Thm) / (C + D + Th + Tm + Thm).
    2-way: the best accuracy over eps in {0} U {|m|} (tie calibration, Deutsch et al. 2023);
    3- and 4-way: C / (C + D + Tm) without a tie band (eps = -1, so Tm = 0); strict K-way: the
    predicted order of the whole group equals the human one; overall: the calibration over all
    pairs pooled.
EditScore (`VectorSpaceLab/EditScore`, calculate_statistics.py): a pair is correct only if the
    preferred edit scores strictly higher (equal scores are wrong), accuracy per task type, then
    the unweighted mean over task types.
Per-prompt SRCC (EditReward's ImagenHub evaluation, `evaluate_imagenhub_from_json_v2`): Spearman
    within each instruction's group of >= 2 edits, groups with an undefined SRCC dropped, then the mean.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import optimize, stats

from ie_eval.data.think_answer import answer_score

LOGISTIC_MAXFEV = 100_000_000  # IE-Critic-R1's curve_fit budget


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    return b2 + (b1 - b2) / (1 + np.exp(-(x - b3) / abs(b4)))


def logistic_fit(pred: Sequence[float], mos: Sequence[float]) -> np.ndarray | None:
    """The fitted predictions, or None when the fit does not converge (IE-Critic-R1 then crashes)."""
    x, y = np.asarray(pred, dtype=np.float64), np.asarray(mos, dtype=np.float64)
    p0 = [y.max(), y.min(), x.mean(), 0.5]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            beta, _ = optimize.curve_fit(logistic4, x, y, p0=p0, maxfev=LOGISTIC_MAXFEV)
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return None
    return logistic4(x, *beta)


def logistic_plcc(pred: Sequence[float], mos: Sequence[float]) -> float:
    """Pearson of the logistic-fitted predictions with MOS (NaN if fewer than 4 items or no fit)."""
    if len(pred) < 4:
        return math.nan
    fitted = logistic_fit(pred, mos)
    if fitted is None or np.std(fitted) == 0:
        return math.nan
    return float(stats.pearsonr(fitted, mos)[0])


def main_score(pred: Sequence[float], mos: Sequence[float]) -> dict[str, float]:
    """IE-Critic-R1's {"plcc": logistic PLCC, "srcc": raw SRCC, "main_score": their mean}."""
    plcc = logistic_plcc(pred, mos)
    srcc = float(stats.spearmanr(pred, mos)[0]) if len(pred) >= 2 else math.nan
    return {"plcc": plcc, "srcc": srcc, "main_score": (plcc + srcc) / 2}


def ie_critic_answer(response: str) -> float | None:
    """IE-Critic-R1's score parser (the think_answer format's, `data/think_answer.answer_score`)."""
    return answer_score(response)


def with_parse_failures(pred: Sequence[float | None], mos: Sequence[float]) -> dict[str, dict[str, float] | int]:
    """MainScore under both parse-failure rules: "dropped" (IE-Critic-R1: failures leave both lists) and
    "counted" (failures stay, predicted as the lowest parsed score, so they cost correlation), + the count."""
    kept = [(p, m) for p, m in zip(pred, mos, strict=True) if p is not None]
    failures = len(pred) - len(kept)
    dropped = main_score([p for p, _ in kept], [m for _, m in kept]) if kept else {}
    floor = min((p for p, _ in kept), default=0.0)
    counted = main_score([floor if p is None else p for p in pred], list(mos))
    return {"dropped": dropped, "counted": counted, "parse_failures": failures}


# --- EditReward's tie-calibrated pairwise accuracy ------------------------------------------
def tie_stats(h: np.ndarray, m: np.ndarray, eps: float) -> dict[str, int]:
    """EditReward's sufficient statistics (C, D, Th, Tm, Thm) of pairs at tie threshold eps."""
    h, m = np.asarray(h, dtype=np.float64), np.asarray(m, dtype=np.float64)
    in_band = np.abs(m) <= eps
    thm = (h == 0) & in_band
    th = (h == 0) & ~in_band
    tm = (h != 0) & in_band
    c = (h != 0) & ~in_band & (h * m > 0)
    d = ~(thm | th | tm | c)
    return {"C": int(c.sum()), "D": int(d.sum()), "Th": int(th.sum()), "Tm": int(tm.sum()), "Thm": int(thm.sum())}


def tie_accuracy(counts: dict[str, int]) -> float:
    total = counts["C"] + counts["D"] + counts["Th"] + counts["Tm"] + counts["Thm"]
    return (counts["C"] + counts["Thm"]) / total if total else math.nan


def tie_calibrated_accuracy(h: Sequence[float], m: Sequence[float]) -> tuple[float, float]:
    """(best accuracy, its eps) over eps in {0} U {|m|}; the smallest eps wins a tie between thresholds."""
    best, best_eps = -math.inf, 0.0
    for eps in sorted({0.0, *np.abs(np.asarray(m, dtype=np.float64)).tolist()}):
        accuracy = tie_accuracy(tie_stats(np.asarray(h), np.asarray(m), eps))
        if accuracy > best:
            best, best_eps = accuracy, eps
    return best, best_eps


def accuracy_without_ties(h: Sequence[float], m: Sequence[float]) -> float:
    """C / (C + D + Tm) with no tie band (eps = -1): human ties leave, a predicted tie (m = 0) is wrong."""
    counts = tie_stats(np.asarray(h), np.asarray(m), -1.0)
    total = counts["C"] + counts["D"] + counts["Tm"]
    return counts["C"] / total if total else math.nan


def pairs_of_group(scores: Sequence[float], ranks: Sequence[int]) -> tuple[list[float], list[float]]:
    """(h, m) of every pair i < j of a group: h = sign(rank_j - rank_i) (1: i preferred), m = s_i - s_j."""
    h, m = [], []
    for i in range(len(scores)):
        for j in range(i + 1, len(scores)):
            h.append(float(np.sign(ranks[j] - ranks[i])))
            m.append(float(scores[i]) - float(scores[j]))
    return h, m


def strict_group_correct(scores: Sequence[float], ranks: Sequence[int], eps: float) -> bool:
    """EditReward's strict K-way check: a tied pair (K = 2) needs |d| <= eps; otherwise the predicted
    order must be the human one (a group with human ties among K > 2 cannot be matched)."""
    if len(scores) == 2 and ranks[0] == ranks[1]:
        return abs(float(scores[0]) - float(scores[1])) <= eps
    if len(set(ranks)) != len(ranks):
        return False
    human = tuple(int(i) for i in np.argsort(np.asarray(ranks), kind="stable"))
    predicted = tuple(int(i) for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"))
    return human == predicted


def editreward_accuracies(groups: Sequence[tuple[Sequence[float], Sequence[int]]]) -> dict[str, float | int]:
    """EditReward's numbers over preference groups: K=2 tie-calibrated, K=3 / K=4 without ties, strict K-way
    per K (the 2-way tie band from the K=2 calibration), overall pooled with the calibration."""
    out: dict[str, float | int] = {}
    by_k: dict[int, list[tuple[Sequence[float], Sequence[int]]]] = {}
    for scores, ranks in groups:
        by_k.setdefault(len(scores), []).append((scores, ranks))
    pooled_h, pooled_m = [], []
    eps_2 = 0.0
    for k in sorted(by_k):
        hs, ms = [], []
        for scores, ranks in by_k[k]:
            h, m = pairs_of_group(scores, ranks)
            hs += h
            ms += m
        pooled_h += hs
        pooled_m += ms
        if k == 2:
            out["k2_accuracy"], eps_2 = tie_calibrated_accuracy(hs, ms)
            out["k2_tie_eps"] = eps_2
        else:
            out[f"k{k}_accuracy"] = accuracy_without_ties(hs, ms)
        strict = [strict_group_correct(s, r, eps_2) for s, r in by_k[k]]
        out[f"k{k}_strict_accuracy"] = sum(strict) / len(strict)
        out[f"k{k}_groups"] = len(strict)
    if pooled_h:
        out["overall_accuracy"], out["overall_tie_eps"] = tie_calibrated_accuracy(pooled_h, pooled_m)
    return out


def editscore_accuracy(pairs: Sequence[tuple[float, float, str]]) -> dict[str, float]:
    """EditScore's accuracy of (preferred score, rejected score, task type) pairs: strict >, ties wrong,
    per task type and their unweighted mean ("average")."""
    per_task: dict[str, list[bool]] = {}
    for preferred, rejected, task in pairs:
        per_task.setdefault(task, []).append(float(preferred) > float(rejected))
    out = {task: sum(flags) / len(flags) for task, flags in sorted(per_task.items())}
    out["average"] = sum(out.values()) / len(out) if out else math.nan
    return out


def per_prompt_srcc(pred: Sequence[float], truth: Sequence[float], prompts: Sequence[str]) -> dict[str, float | int]:
    """Mean Spearman within each prompt's group of >= 2 items (undefined groups dropped), and how many counted."""
    groups: dict[str, list[int]] = {}
    for index, prompt in enumerate(prompts):
        groups.setdefault(prompt, []).append(index)
    values = []
    for rows in groups.values():
        if len(rows) < 2:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rho = stats.spearmanr([pred[i] for i in rows], [truth[i] for i in rows])[0]
        if np.isfinite(rho):
            values.append(float(rho))
    return {"per_prompt_srcc": float(np.mean(values)) if values else math.nan, "prompts": len(values)}
