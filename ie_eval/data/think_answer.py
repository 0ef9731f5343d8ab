"""IE-Critic-R1's critique format: free reasoning in `<think>...</think>`, one overall score in `<answer>...</answer>`.

The rules are theirs (Coobiw/IE-Critic-R1): the format reward is a full match of
`<think>.*?</think>\\s*<answer>.*?</answer>` (DOTALL) on the whole response, and the score is
the text inside `<answer>...</answer>` (everything after `<answer>` if it is never closed, the
whole response if it has no tag), read with float(). Their training reward's regex reads an
unclosed `<answer>` as the whole response (then float() fails and the reward is 0); their
evaluation reads the rest after the tag: we use the evaluation rule everywhere, so a score the
eval reads is the score the reward saw. Out-of-range answers are kept (IE-Critic-R1's eval keeps
them; its reward gives them 0).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

THINK_ANSWER_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", flags=re.DOTALL)
_THINK_RE = re.compile(r"<think>(.*?)(?:</think>|$)", flags=re.DOTALL)
# IE-Critic-R1 asks for "a number rounded to two decimal places".
ANSWER_DECIMALS = 2


def answer_score(response: str) -> float | None:
    """IE-Critic-R1's score parser (`scripts/iebench_eval.py`): float of the answer text; None if not a number."""
    if not isinstance(response, str):
        return None
    text = response.strip().rstrip(".")
    start = text.find("<answer>")
    if start != -1:
        text = text[start + len("<answer>"):]
        end = text.find("</answer>")
        text = text[:end] if end != -1 else text
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def well_formed(response: str) -> bool:
    """IE-Critic-R1's format reward condition: the whole response is `<think>...</think> <answer>...</answer>`."""
    return isinstance(response, str) and THINK_ANSWER_RE.fullmatch(response) is not None


def think_text(response: str) -> str:
    """The reasoning inside `<think>` (to the end if unclosed), or the response itself when it has no tag."""
    if not isinstance(response, str):
        return ""
    match = _THINK_RE.search(response)
    return match.group(1).strip() if match else response


def format_think_answer(reasoning: str, score: float) -> str:
    """`<think>reasoning</think>\\n<answer>score</answer>`, the score with two decimals."""
    if not reasoning.strip():
        raise ValueError("format_think_answer: empty reasoning")
    if not math.isfinite(score):
        raise ValueError(f"format_think_answer: score must be finite, got {score}")
    return f"<think>\n{reasoning.strip()}\n</think>\n<answer>{score:.{ANSWER_DECIMALS}f}</answer>"


def overall_of(scores: Sequence[float]) -> float:
    """One overall score from per-dimension ones: their mean (the paper's overall, as for ImagenHub)."""
    return float(sum(scores) / len(scores))
