"""Every prompt the models see, in one place: training, generation and reward scoring share it.

Messages use the HF multimodal chat format. Images appear as `{"type": "image"}` entries,
source first and edited second; the PIL images go to the processor separately, in that order.
Prompts are short on purpose: tiny models run on CPU in tests, and real models need no more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ie_eval.data.records import MOS_DIMS

# Section titles of a critique, in MOS_DIMS order.
DIM_TITLES: Mapping[str, str] = {
    "visual_quality": "Visual Quality",
    "instruction_alignment": "Instruction Alignment",
    "content_preservation": "Content Preservation",
}
FINAL_ASSESSMENT = "[Final Assessment]"
# Range of the scores a critique gives in its final assessment.
SCORE_RANGE: tuple[int, int] = (1, 5)

# The exact critique structure: observations per dimension, then three scores. A parser of
# generated critiques reads this same layout ("[Title]" headers, then "Title: score" lines).
CRITIQUE_FORMAT = (
    "[Visual Quality]\n{visual_quality}\n"
    "[Instruction Alignment]\n{instruction_alignment}\n"
    "[Content Preservation]\n{content_preservation}\n"
    f"{FINAL_ASSESSMENT}\n"
    "Visual Quality: {visual_quality_score}\n"
    "Instruction Alignment: {instruction_alignment_score}\n"
    "Content Preservation: {content_preservation_score}"
)

# How a critic writes its critique (and how it is read back: data/critique_format.py):
# "sections": ReasonEdit's observations per dimension + [Final Assessment] with three scores;
# "think_answer": IE-Critic-R1's <think>reasoning</think><answer>one overall score</answer>.
CRITIQUE_FORMATS: tuple[str, ...] = ("sections", "think_answer")

# Cue the reward prompt ends with (paper appendix C.6); the reward model pools after it.
REWARD_CUE = "Reward Scores:"


def format_critique(observations: Mapping[str, str], scores: Sequence[float]) -> str:
    """A critique in CRITIQUE_FORMAT from per-dimension observations and (vq, ia, cp) scores."""
    missing = [dim for dim in MOS_DIMS if dim not in observations]
    if missing:
        raise ValueError(f"format_critique: observations missing for {missing}")
    if len(scores) != len(MOS_DIMS):
        raise ValueError(f"format_critique: need {len(MOS_DIMS)} scores, got {len(scores)}")
    fields = {dim: observations[dim].strip() for dim in MOS_DIMS}
    fields |= {f"{dim}_score": _format_score(score) for dim, score in zip(MOS_DIMS, scores, strict=True)}
    return CRITIQUE_FORMAT.format(**fields)


def _format_score(score: float) -> str:
    """Scores print without a trailing `.0` so integers read as the model would write them."""
    return f"{score:g}"


def critic_messages(instruction: str) -> list[dict]:
    """Ask the critic for observations per dimension and a `[Final Assessment]` with three scores."""
    low, high = SCORE_RANGE
    task = (
        f"Edit instruction: {_clean(instruction)}\n"
        "Evaluate the edit on visual quality, instruction alignment and content preservation. "
        f"Give observations for each, then {FINAL_ASSESSMENT} with a score from {low} to {high} for each, "
        "in this format:\n"
        "[Visual Quality]\n...\n[Instruction Alignment]\n...\n[Content Preservation]\n...\n"
        f"{FINAL_ASSESSMENT}\nVisual Quality: <score>\nInstruction Alignment: <score>\nContent Preservation: <score>"
    )
    return [{"role": "user", "content": _image_pair_content(task)}]


def think_answer_messages(instruction: str) -> list[dict]:
    """IE-Critic-R1's CoT prompt (`scripts/iebench_eval.py`): the three aspects, one overall 1-5 score,
    reasoning in <think> and the score in <answer>, with the images as content entries."""
    low, high = SCORE_RANGE
    task = (
        f"Edit Instruction: {_clean(instruction)}\n\n"
        "Given the source image and the edited image, along with the editing instruction, please evaluate "
        "the overall quality of the edited image.\nConsider the following aspects:\n"
        "1. Text alignment: How well does the edit follow the instruction?\n"
        "2. Fidelity: How well does the edited image preserve the unedited parts of the source image?\n"
        "3. Quality: What is the perceptual quality of the edited image?\n\n"
        f"The overall rating should be a float between {low} and {high}, with {low} representing very poor quality "
        f"and {high} representing excellent quality.\nReturn your final answer as a number rounded to two decimal "
        "places. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
        "tags, respectively, i.e., <think> reasoning process here </think><answer> answer here </answer>"
    )
    return [{"role": "user", "content": _image_pair_content(task)}]


def critic_prompt(instruction: str, critique_format: str = "sections") -> list[dict]:
    """The critic's prompt in the given critique format (one of CRITIQUE_FORMATS)."""
    if critique_format == "sections":
        return critic_messages(instruction)
    if critique_format == "think_answer":
        return think_answer_messages(instruction)
    raise ValueError(f"unknown critique_format {critique_format!r}; choose one of {CRITIQUE_FORMATS}")


def reward_messages(instruction: str, critique: str) -> list[dict]:
    """Ask to rate a candidate critique's logicality, accuracy and usefulness; ends with the reward cue."""
    task = (
        f"Edit instruction: {_clean(instruction)}\n"
        f"Candidate critique:\n{critique.strip()}\n\n"
        "Rate the critique's logicality, accuracy and usefulness.\n"
        f"{REWARD_CUE}"
    )
    return [{"role": "user", "content": _image_pair_content(task)}]


def preference_messages(instruction: str) -> list[dict]:
    """Ask to rate the edit itself (no critique): the prompt of the pairwise reward model (EditReward-style)."""
    task = (
        f"Edit instruction: {_clean(instruction)}\n"
        "Rate the edited image: its visual quality, how well it follows the instruction, and how well it "
        "preserves what the instruction does not change."
    )
    return [{"role": "user", "content": _image_pair_content(task)}]


def _image_pair_content(task: str) -> list[dict]:
    """User content: labelled source image, labelled edited image, then the task text."""
    return [
        {"type": "text", "text": "Source image:"},
        {"type": "image"},
        {"type": "text", "text": "\nEdited image:"},
        {"type": "image"},
        {"type": "text", "text": f"\n{task}"},
    ]


def _clean(instruction: str) -> str:
    """Instruction on one line, so it cannot fake a section header of the format."""
    text = " ".join(instruction.split())
    if not text:
        raise ValueError("empty edit instruction")
    return text


# The 5-point Likert scale of the zero-shot judge (paper section 6.2, appendix E.4).
JUDGE_SCALE = "1 (very poor) to 5 (excellent)"


def judge_messages(instruction: str, dims: Sequence[str], critique: str | None = None) -> list[dict]:
    """Zero-shot MLLM judge (paper appendix E.4): reason step by step, then a JSON object of 1-5 scores.

    Without `critique` the judge rates the edit (MOS dims); with it, the critique (logicality,
    accuracy, usefulness), as in the paper's zero-shot reward baselines.
    """
    example = ", ".join(f'"{dim}": <score>' for dim in dims)
    subject = "the candidate critique of this edit" if critique is not None else "the edit"
    task = f"Edit instruction: {_clean(instruction)}\n"
    if critique is not None:
        task += f"Candidate critique:\n{critique.strip()}\n\n"
    task += (
        f"Evaluate {subject} on {', '.join(d.replace('_', ' ') for d in dims)}, each on a 5-point Likert scale "
        f"from {JUDGE_SCALE}. First reason step by step about what you see. Then end your answer with one "
        f"JSON object and nothing after it:\n{{{example}}}"
    )
    return [{"role": "user", "content": _image_pair_content(task)}]


# --- vision-language pretraining on the synthetic world (ie_eval.data.pretrain) ----------------
def _one_image_content(task: str) -> list[dict]:
    """User content: one labelled image, then the task text."""
    return [{"type": "text", "text": "Image:"}, {"type": "image"}, {"type": "text", "text": f"\n{task}"}]


def describe_messages() -> list[dict]:
    """One image -> its objects, background and look."""
    return [{"role": "user", "content": _one_image_content("Describe the image: objects, background and look.")}]


def change_messages(instruction: str) -> list[dict]:
    """Source + edited image + instruction -> what the edit did (target, others, quality)."""
    task = f"Edit instruction: {_clean(instruction)}\nDescribe what the edit changed: target, others and quality."
    return [{"role": "user", "content": _image_pair_content(task)}]


def _one_or_numbered(items: Sequence[str], empty_error: str, *, one: str, many: str, item: str) -> str:
    """`one` around a single item, else `many` around the items numbered 1., 2., ... (each formatted by `item`)."""
    if not items:
        raise ValueError(empty_error)
    if len(items) == 1:
        return one.format(items[0])
    return many.format("\n".join(f"{i + 1}. {item.format(text)}" for i, text in enumerate(items)))


def verify_messages(claims: Sequence[str], instruction: str | None) -> list[dict]:
    """Claims about an edit (with `instruction`: two images) or about one image -> true / false each."""
    question = _one_or_numbered(
        claims, "verify_messages: no claims", one="Claim: {}.\nIs the claim true? Answer true or false.",
        many="Claims:\n{}\nAnswer true or false for each claim.", item="{}.",
    )
    if instruction is None:
        return [{"role": "user", "content": _one_image_content(question)}]
    return [{"role": "user", "content": _image_pair_content(f"Edit instruction: {_clean(instruction)}\n{question}")}]


def ask_messages(questions: Sequence[str]) -> list[dict]:
    """One image + questions that each look one thing up in it -> short answers."""
    text = _one_or_numbered(
        questions, "ask_messages: no questions", one="Question: {}?\nAnswer briefly.",
        many="Questions:\n{}\nAnswer each briefly.", item="{}?",
    )
    return [{"role": "user", "content": _one_image_content(text)}]
