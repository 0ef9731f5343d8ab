"""Qwen-family tokenizers built offline, for the tiny presets.

A byte-level BPE is trained in well under a second on a small built-in English corpus (words
of image-editing critiques), then wrapped in the family's real tokenizer class with the
family's special tokens, in the family's order, and a chat template equivalent to the real
one. Byte-level BPE can encode any text, so the tiny models accept the same prompts as the
real ones; only the ids differ.
"""

from __future__ import annotations

import functools
import json

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase

# Target size of the trained BPE vocabulary (bytes + merges), before special tokens, per corpus.
BPE_VOCAB_SIZE = 1024
# "builtin": the generic sentences below. "synth-world": the synthetic world's own text
# (`ie_eval.data.pretrain.corpus`), for backbones pretrained on it: its words become single tokens.
CORPORA: dict[str, int] = {"builtin": BPE_VOCAB_SIZE, "synth-world": 2048}

# Qwen2 (also Qwen2.5-VL, Qwen3-VL) and Qwen3.5 pre-tokenizer regexes; Qwen3.5 keeps marks with letters.
_QWEN2_PRETOKENIZE_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
_QWEN3_5_PRETOKENIZE_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

# Special tokens in the order of the real tokenizers (ids 151643.. for Qwen2.5/Qwen3, 248044.. for Qwen3.5).
# (token, special): the real tokenizers mark tool/fim/think tokens as added but not special.
_QWEN2_5_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
)
_QWEN3_ADDED_TOKENS = _QWEN2_5_ADDED_TOKENS + (
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)

# Qwen2.5-VL: default system prompt, images as <|vision_start|><|image_pad|><|vision_end|>.
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen3-VL / Qwen3.5 share the message rendering: no default system prompt.
_QWEN3_MESSAGES = (
    "{%- set image_count = namespace(value=0) %}{%- set video_count = namespace(value=0) %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for content in message['content'] %}"
    "{%- if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{%- set image_count.value = image_count.value + 1 %}{%- if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif content['type'] == 'video' or 'video' in content %}"
    "{%- set video_count.value = video_count.value + 1 %}{%- if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in content %}{{- content['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\n' }}"
    "{%- endfor %}"
)
QWEN3_VL_CHAT_TEMPLATE = (
    _QWEN3_MESSAGES + "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
# Qwen3.5 thinks by default; `enable_thinking=False` closes an empty think block, as the real template does.
QWEN3_5_CHAT_TEMPLATE = _QWEN3_MESSAGES.replace(
    "{{- '<|im_start|>' + message['role'] + '\n' }}",
    "{{- '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['role'] == 'assistant' and loop.last %}{{- '<think>\n\n</think>\n\n' }}{%- endif %}",
) + (
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\n\n</think>\n\n' }}"
    "{%- else %}{{- '<think>\n' }}{%- endif %}{%- endif %}"
)

# family -> (pre-tokenizer regex, added tokens, chat template, transformers tokenizer class name)
_FAMILY_TOKENIZERS: dict[str, tuple[str, tuple[tuple[str, bool], ...], str, str]] = {
    "qwen2.5-vl": (
        _QWEN2_PRETOKENIZE_REGEX,
        _QWEN2_5_ADDED_TOKENS,
        QWEN2_5_VL_CHAT_TEMPLATE,
        "Qwen2Tokenizer",
    ),
    "qwen3-vl": (_QWEN2_PRETOKENIZE_REGEX, _QWEN3_ADDED_TOKENS, QWEN3_VL_CHAT_TEMPLATE, "Qwen2Tokenizer"),
    "qwen3.5": (_QWEN3_5_PRETOKENIZE_REGEX, _QWEN3_ADDED_TOKENS, QWEN3_5_CHAT_TEMPLATE, "Qwen3_5Tokenizer"),
}

# Built-in training text: critique vocabulary, so prompts and critiques take few tokens.
_CORPUS: tuple[str, ...] = (
    "You are an expert evaluator of text-guided image editing.",
    "The first image is the source image and the second image is the edited image.",
    "Edit instruction: change the color of the car to red.",
    "Evaluate the edit on visual quality, instruction alignment and content preservation.",
    "Visual Quality: the edited image is sharp, with natural lighting and no visible artifacts.",
    "Instruction Alignment: the edit follows the instruction; the object is now blue as requested.",
    "Content Preservation: the background, the people and the layout are preserved.",
    "Observations: the red circle was replaced by a green square; the yellow triangle is unchanged.",
    "[Visual Quality] [Instruction Alignment] [Content Preservation] [Final Assessment]",
    '{"visual_quality": 4.5, "instruction_alignment": 3.0, "content_preservation": 2.5}',
    "Scores: 0 1 2 3 4 5 6 7 8 9 10. 1.5, 2.5, 3.5, 4.5 out of 5.",
    "Rate the candidate critique's logicality, accuracy and usefulness. Reward Scores:",
    "Logicality: the reasoning is coherent. Accuracy: the observations are correct. Usefulness: helpful.",
    "colors: red, green, blue, yellow, orange, purple, pink, brown, black, white, gray, cyan, magenta.",
    "shapes: circle, square, triangle, rectangle, star, ellipse, line, background, object, region.",
    "add remove replace move resize recolor deblur denoise style background foreground texture.",
    "The sky, the tree, the dog, the cat, the person, the house, the road, the water, the text.",
    "blurry, noisy, distorted, oversaturated, realistic, consistent, faithful, partially, fully.",
    "The edit is good, the edit is poor, the edit is excellent, the edit fails the instruction.",
    "There are artifacts near the edges; the colors bleed; the shape is deformed; the size changed.",
    "Final Assessment: visual quality 4, instruction alignment 5, content preservation 3.",
    "Please answer in the required format. Think step by step about each dimension.",
)


def corpus_texts(corpus: str) -> tuple[str, ...]:
    """Training text of a named corpus (see CORPORA)."""
    if corpus == "builtin":
        return _CORPUS * 4
    if corpus == "synth-world":
        from ie_eval.data.pretrain.corpus import world_corpus

        return world_corpus()
    raise ValueError(f"unknown tokenizer corpus {corpus!r}; choose one of {sorted(CORPORA)}")


@functools.cache
def trained_bpe(family: str, corpus: str = "builtin") -> tuple[str, tuple[tuple[str, str], ...]]:
    """Vocab (JSON string) and merges of a byte-level BPE trained on a named corpus.

    Cached per (family, corpus) because tests build presets many times; the values are immutable.
    """
    regex, _, _, _ = family_tokenizer_spec(family)
    texts = corpus_texts(corpus)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=CORPORA[corpus],
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    merges = tuple(tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"])
    return json.dumps(model["vocab"]), merges


def family_tokenizer_spec(family: str) -> tuple[str, tuple[tuple[str, bool], ...], str, str]:
    """(pre-tokenizer regex, added tokens, chat template, tokenizer class name) of a family."""
    if family not in _FAMILY_TOKENIZERS:
        raise ValueError(f"no offline tokenizer for family {family!r}; known: {sorted(_FAMILY_TOKENIZERS)}")
    return _FAMILY_TOKENIZERS[family]


def chat_template_for(family: str) -> str:
    """The Jinja chat template of a family (equivalent to the real one for text and images)."""
    return family_tokenizer_spec(family)[2]


def build_offline_tokenizer(family: str, corpus: str = "builtin") -> PreTrainedTokenizerBase:
    """A fresh tokenizer of the family's class, with its special tokens and chat template, built offline.

    Special tokens follow the BPE vocabulary in the real order, so e.g. `<|image_pad|>` is
    `<|endoftext|>` + 12 as in the real tokenizers. eos is `<|im_end|>` and pad `<|endoftext|>`
    as in the Instruct checkpoints. A new object each call, so callers may mutate it.
    """
    import transformers

    _, added_tokens, template, class_name = family_tokenizer_spec(family)
    vocab_json, merges = trained_bpe(family, corpus)
    tokenizer_cls = getattr(transformers, class_name)
    tokenizer = tokenizer_cls(
        vocab=json.loads(vocab_json),
        merges=[tuple(m) for m in merges],
        unk_token=None,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        chat_template=template,
    )
    _add_family_tokens(tokenizer, added_tokens)
    # Set after the tokens exist, else the constructor would add `<|im_end|>` out of order.
    tokenizer.eos_token = "<|im_end|>"
    return tokenizer


def _add_family_tokens(
    tokenizer: PreTrainedTokenizerBase, added_tokens: tuple[tuple[str, bool], ...]
) -> None:
    """Append the family's added tokens in order and check they got consecutive ids."""
    vocab = tokenizer.get_vocab()
    for token, special in added_tokens:
        if token not in vocab:
            tokenizer.add_tokens(
                [AddedToken(token, special=special, normalized=False)], special_tokens=special
            )
    # Flag them as named specials too (the real tokenizer_config's additional special tokens),
    # so `all_special_tokens` lists them and decoding with skip_special_tokens drops them.
    extra = [token for token, special in added_tokens if special and token != "<|endoftext|>"]
    tokenizer.add_special_tokens({"extra_special_tokens": extra})
    ids = [tokenizer.convert_tokens_to_ids(token) for token, _ in added_tokens]
    if ids != list(range(ids[0], ids[0] + len(ids))):
        raise RuntimeError(f"offline tokenizer: special tokens did not get consecutive ids: {ids}")
