"""Candidate critiques with known logicality, accuracy and usefulness.

Every instruction is edited twice (two pairs, same source, different outcomes). Each critique
text describes ONE of the two edits faithfully and is attached to BOTH pairs: it is accurate
for the edit it describes and inaccurate for its twin, because it always makes at least one
claim on which the two edits differ. So accuracy cannot be read off the text; it needs the
edited image. Logicality (final scores vs the text's own observations) and usefulness
(specific vs generic) are properties of the text alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ie_eval.data.critique_format import parse_final_assessment  # noqa: F401  (re-exported: synth callers read it here)
from ie_eval.data.synth.editor import EditOutcome, check_distinguishable
from ie_eval.data.synth.facts import FACT_KEYS, Fact

STYLES: tuple[str, ...] = ("terse", "detailed", "bullets", "json", "generic")
STYLE_WEIGHTS: tuple[float, ...] = (0.25, 0.25, 0.2, 0.15, 0.15)
CLAIM_COUNTS: dict[str, tuple[int, int]] = {
    "terse": (1, 2),
    "detailed": (2, 3),
    "bullets": (2, 3),
    "json": (2, 2),
    "generic": (1, 1),
}
USEFULNESS_BASE: dict[str, float] = {
    "detailed": 0.82,
    "bullets": 0.76,
    "json": 0.66,
    "terse": 0.55,
    "generic": 0.15,
}
# Which MOS dim (visual_quality=0, alignment=1, preservation=2) a claim about a fact key speaks to.
KEY_DIM: dict[str, int] = {"quality": 0, "target": 1, "others": 2}
VAGUE_TEXT: dict[tuple[str, bool], str] = {
    ("target", True): "the requested change seems to be there",
    ("target", False): "the requested change does not fully come through",
    ("others", True): "the rest looks about the same",
    ("others", False): "something else in the picture seems to have changed",
    ("quality", True): "the image looks clean",
    ("quality", False): "the image looks a bit rough",
}
BULLET_LABELS: dict[str, str] = {
    "target": "Requested change",
    "others": "Rest of the scene",
    "quality": "Image quality",
}
SUMMARY: dict[tuple[str, bool], str] = {
    ("target", True): "the instruction is followed",
    ("target", False): "the instruction is not properly followed",
    ("others", True): "the rest is preserved",
    ("others", False): "unrelated content changed",
    ("quality", True): "quality is fine",
    ("quality", False): "quality suffered",
}
FIXES: dict[str, str] = {
    "target": "The requested change should be redone properly.",
    "others": "Unrelated content should be restored.",
    "quality": "The artifacts should be cleaned up.",
}
FINAL_TAG = "[Final Assessment]"
FINAL_LABELS: tuple[str, str, str] = ("visual quality", "instruction alignment", "content preservation")
LOGICAL_PROBABILITY = 0.7
SCORE_JITTER = 0.03


@dataclass(frozen=True)
class Claim:
    """One observation in a critique; `vague` claims only commit to good/bad (`ok`)."""

    key: str
    text: str
    ok: bool
    vague: bool = False

    def holds(self, facts: Mapping[str, Fact]) -> bool:
        """True iff the claim is true of an edited image with these facts."""
        fact = facts[self.key]
        return fact.ok == self.ok if self.vague else fact.text == self.text


@dataclass(frozen=True)
class Critique:
    """A critique text plus its construction: who it describes and its text-only truths."""

    text_id: str
    text: str
    style: str
    describes: int
    claims: tuple[Claim, ...]
    implied: tuple[int, int, int]
    final: tuple[int, int, int]
    logical: bool
    logicality: float
    usefulness: float


def format_final_assessment(scores: Sequence[int], json_style: bool = False) -> str:
    """`[Final Assessment] visual quality: 3/5; ...`, or the same scores as a JSON object."""
    if json_style:
        return f"{FINAL_TAG} {json.dumps(dict(zip(FINAL_LABELS, (int(s) for s in scores), strict=True)))}"
    return f"{FINAL_TAG} " + "; ".join(
        f"{label}: {int(s)}/5" for label, s in zip(FINAL_LABELS, scores, strict=True)
    )


def implied_scores(truth_mos: Sequence[float]) -> tuple[int, int, int]:
    """The 1..5 scores a faithful critic of an edit with this true MOS would give."""
    values = [int(min(5, max(1, round(1 + 4 * float(t))))) for t in truth_mos]
    return (values[0], values[1], values[2])


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def choose_claims(
    style: str,
    facts: Mapping[str, Fact],
    diff_keys: Sequence[str],
    vague_keys: Sequence[str],
    rng: np.random.Generator,
) -> tuple[Claim, ...]:
    """Claims about the described edit, always including one on which the twin edit differs."""
    if style == "generic":
        key = vague_keys[int(rng.integers(len(vague_keys)))]
        ok = facts[key].ok
        return (Claim(key, VAGUE_TEXT[(key, ok)], ok, vague=True),)
    low, high = CLAIM_COUNTS[style]
    count = int(rng.integers(low, high + 1))
    keys = {diff_keys[int(rng.integers(len(diff_keys)))]}
    rest = [k for k in FACT_KEYS if k not in keys]
    keys.update(rest[int(i)] for i in rng.permutation(len(rest))[: count - 1])
    return tuple(Claim(k, facts[k].text, facts[k].ok) for k in FACT_KEYS if k in keys)


def conclude(
    implied: tuple[int, int, int], claims: Sequence[Claim], logical: bool, rng: np.random.Generator
) -> tuple[int, int, int]:
    """Final scores: the implied ones (maybe off by one), or contradicting a claimed observation
    (a good observation scored 1/5, a bad one 5/5) on one or two of the claimed dims."""
    final = list(implied)
    if logical:
        if rng.random() < 0.35:
            dim = int(rng.integers(3))
            final[dim] = int(min(5, max(1, final[dim] + (1 if rng.random() < 0.5 else -1))))
        return (final[0], final[1], final[2])
    count = 2 if len(claims) > 1 and rng.random() < 0.3 else 1
    for i in rng.permutation(len(claims))[:count]:
        claim = claims[int(i)]
        final[KEY_DIM[claim.key]] = 1 if claim.ok else 5
    return (final[0], final[1], final[2])


def render_text(style: str, claims: Sequence[Claim], final: Sequence[int], rng: np.random.Generator) -> str:
    """The critique in one writing style, ending with its [Final Assessment] line."""
    texts = [c.text for c in claims]
    summary = ", ".join(SUMMARY[(c.key, c.ok)] for c in claims)
    if style == "terse":
        body = " ".join(f"{_capital(t)}." for t in texts)
    elif style == "detailed":
        opening = ["Looking at the edited image", "Comparing source and edit", "On close inspection"][
            int(rng.integers(3))
        ]
        fixes = [FIXES[c.key] for c in claims if not c.ok]
        body = f"{opening}, {'; '.join(texts)}. In short, {summary}. {fixes[0] if fixes else 'No fixes are needed.'}"
    elif style == "bullets":
        body = "\n".join(f"- {BULLET_LABELS[c.key]}: {t}." for c, t in zip(claims, texts, strict=True))
    elif style == "json":
        body = f"Observations: {'; '.join(texts)}. Summary: {summary}."
    elif style == "generic":
        opening = ["The edit looks okay overall.", "Overall a reasonable attempt."][int(rng.integers(2))]
        filler = ["Some parts could be better.", "Hard to say much more."][int(rng.integers(2))]
        body = f"{opening} {_capital(texts[0])}. {filler}"
    else:
        raise ValueError(f"unknown critique style '{style}'; choose one of {STYLES}")
    return f"{body}\n{format_final_assessment(final, json_style=style == 'json')}"


def logicality_truth(implied: Sequence[int], final: Sequence[int], rng: np.random.Generator) -> float:
    """1 when the conclusion follows the observations, falling with the largest contradiction."""
    gaps = np.abs(np.asarray(final) - np.asarray(implied))
    value = 0.95 - 0.22 * gaps.max() - 0.03 * gaps.sum() + rng.normal(0.0, SCORE_JITTER)
    return round(float(np.clip(value, 0.02, 0.98)), 4)


def usefulness_truth(style: str, claims: Sequence[Claim], rng: np.random.Generator) -> float:
    """Specific, actionable styles are useful; generic text is not."""
    specific = sum(not c.vague for c in claims)
    value = USEFULNESS_BASE[style] + 0.04 * max(0, specific - 2) + rng.normal(0.0, SCORE_JITTER)
    return round(float(np.clip(value, 0.02, 0.98)), 4)


def accuracy_truth(claims: Sequence[Claim], facts: Mapping[str, Fact], rng: np.random.Generator) -> float:
    """High iff every claim is true of THIS edited image; one false claim puts it below 0.5."""
    false_fraction = sum(not c.holds(facts) for c in claims) / len(claims)
    jitter = rng.normal(0.0, SCORE_JITTER)
    if false_fraction == 0:
        base = 0.72 if any(c.vague for c in claims) else 0.92
        return round(float(np.clip(base + jitter, 0.55, 0.98)), 4)
    return round(float(np.clip(0.38 - 0.3 * false_fraction + jitter, 0.02, 0.45)), 4)


def _choose_style(rng: np.random.Generator, allow_generic: bool) -> str:
    weights = np.asarray(
        [w if (s != "generic" or allow_generic) else 0.0 for s, w in zip(STYLES, STYLE_WEIGHTS, strict=True)]
    )
    return STYLES[int(rng.choice(len(STYLES), p=weights / weights.sum()))]


def write_group_critiques(
    outcomes: Sequence[EditOutcome], count: int, group_id: str, rng: np.random.Generator, optimism: float = 0.5
) -> list[Critique]:
    """`count` distinct critiques for a twin pair of edits.

    Each describes the better edit (higher mean truth MOS) with probability `optimism`, else
    the worse one. Like MLLM critics, which mostly write as if the edit succeeded, an
    optimism above 0.5 makes a failed-looking edited image a (first-order, image-only) sign of
    an inaccurate critique, while every text still occurs with both accuracy labels.
    """
    if len(outcomes) != 2:
        raise ValueError(f"{group_id}: critiques are written for twin edits, got {len(outcomes)} edits")
    diff_keys = check_distinguishable(outcomes[0], outcomes[1])
    vague_keys = [k for k in FACT_KEYS if outcomes[0].facts[k].ok != outcomes[1].facts[k].ok]
    better = int(np.argmax([float(np.mean(o.truth_mos)) for o in outcomes]))
    critiques: list[Critique] = []
    seen: set[str] = set()
    for index in range(count):
        describes = better if rng.random() < optimism else 1 - better
        described = outcomes[describes]
        implied = implied_scores(described.truth_mos)
        for _attempt in range(6):  # redraw a duplicate text; a rare leftover duplicate is harmless
            style = _choose_style(rng, allow_generic=bool(vague_keys))
            claims = choose_claims(style, described.facts, diff_keys, vague_keys, rng)
            logical = bool(rng.random() < LOGICAL_PROBABILITY)
            final = conclude(implied, claims, logical, rng)
            text = render_text(style, claims, final, rng)
            if text not in seen:
                break
        seen.add(text)
        critiques.append(
            Critique(
                text_id=f"{group_id}_t{index}",
                text=text,
                style=style,
                describes=describes,
                claims=claims,
                implied=implied,
                final=final,
                logical=logical,
                logicality=logicality_truth(implied, final, rng),
                usefulness=usefulness_truth(style, claims, rng),
            )
        )
    return critiques
