"""Text of the synthetic world, for training a tokenizer that spells its words as single tokens.

The offline tokenizer's built-in corpus is a few generic sentences, so words such as "bottom"
or "hexagon" cost several tokens each. A backbone pretrained on the world gets a byte-level BPE
trained on what it will read and write: every prompt template, descriptions, change facts,
claims, instructions and critiques in every benchmark style, drawn from the pretraining seed
stream (never the benchmark's), so the same call always gives the same text.
"""

from __future__ import annotations

import functools

from ie_eval.data.pretrain.tasks import TRAIN_STREAM, TaskMix, edit_instruction, make_sample
from ie_eval.data.prompts import critic_messages, format_critique, judge_messages, reward_messages
from ie_eval.data.records import CRITIQUE_DIMS, MOS_DIMS
from ie_eval.data.synth.benchmark import edit_twins, stream_rng
from ie_eval.data.synth.critiques import KEY_DIM, write_group_critiques

CORPUS_SAMPLES = 600  # pretraining samples rendered as text (images skipped: only the words count)
CORPUS_GROUPS = 200  # twin edits whose critiques join the corpus
CORPUS_SEED = 7


def message_text(messages: list[dict]) -> str:
    """The text parts of chat messages, joined."""
    return "\n".join(
        part["text"] for message in messages for part in message["content"] if part.get("type") == "text"
    )


@functools.cache
def world_corpus(samples: int = CORPUS_SAMPLES, groups: int = CORPUS_GROUPS) -> tuple[str, ...]:
    """Deterministic world text: pretraining prompts and answers, critiques, the other stages' prompts."""
    texts: list[str] = []
    mix = TaskMix(image_size=32)  # tiny renders: the corpus needs the words, not the pixels
    for index in range(samples):
        sample = make_sample(CORPUS_SEED, TRAIN_STREAM, index, mix)
        texts += [message_text(sample.messages), sample.answer]
    for index in range(groups):
        rng = stream_rng(CORPUS_SEED, TRAIN_STREAM + 100, index)
        scene, instruction = edit_instruction(rng)
        outcomes = edit_twins(scene, instruction, 32, rng)
        for critique in write_group_critiques(outcomes, 4, f"corpus{index}", rng):
            texts += [message_text(reward_messages(instruction.text, critique.text))]
            observations = {dim: "No specific observation." for dim in MOS_DIMS}
            for claim in critique.claims:
                observations[MOS_DIMS[KEY_DIM[claim.key]]] = claim.text[:1].upper() + claim.text[1:] + "."
            texts.append(format_critique(observations, critique.final))
        texts.append(message_text(critic_messages(instruction.text)))
    texts.append(message_text(judge_messages("Make the star red.", MOS_DIMS)))
    texts.append(message_text(judge_messages("Make the star red.", CRITIQUE_DIMS, critique="The star is red.")))
    texts.append(" ".join(str(n) for n in range(101)) + " 0.5 1.5 2.5 3.5 4.5 -0.25 1/5 2/5 3/5 4/5 5/5")
    return tuple(texts)
