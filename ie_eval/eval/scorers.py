"""One interface for every evaluator `ie-eval eval` can run, and the SPEC strings that build them.

A scorer maps a list of records to one row of predictions per record over its `dims` (a
subset of MOS_DIMS or of CRITIQUE_DIMS, higher = better), or None for a record it could not
score (a generated answer that does not parse). SPEC strings:

    rm:DIR            RE-Reward checkpoint (RewardModel.save_pretrained), critique dims
    critic:DIR        critic, score-only (regression head on the prefill), MOS dims
    critic-cot:DIR    critic, CoT: generated critique, scores parsed from its text, MOS dims
    pairwise-rm:DIR   pairwise preference reward model (EditReward): mu per dim (its dims), sigma in info
    judge:BACKBONE    zero-shot MLLM judge on the edit (any backbone spec or tiny preset), MOS dims
    judge-rm:BACKBONE zero-shot MLLM judge on the critique, critique dims
    psnr | ssim | ms-ssim | gmsd   full-reference source vs edited -> visual quality, content preservation
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ie_eval.data.records import EditRecord
from ie_eval.eval.scorer_base import ScoreOutput, Scorer, ScorerOptions
from ie_eval.metrics.image_quality import full_reference
from ie_eval.progress import track

CLASSICAL: tuple[str, ...] = ("psnr", "ssim", "ms-ssim", "gmsd")
# Dims a full-reference metric stands in for (paper table 2 reports them on all three; instruction
# alignment has no reference to compare with, so it is not predicted here).
CLASSICAL_DIMS: tuple[str, ...] = ("visual_quality", "content_preservation")


def load_rgb_tensor(path, size: tuple[int, int] | None = None) -> torch.Tensor:
    """(3, H, W) float in [0, 1]; resized (bicubic) to `size` = (W, H) when given."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    if size is not None and rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)


class FullReferenceScorer(Scorer):
    """PSNR / SSIM / MS-SSIM / GMSD of the edited image against the source.

    The edited image is resized to the source's size when they differ. GMSD is negated so that
    higher is better for every scorer (correlation signs are then comparable).
    """

    dims = CLASSICAL_DIMS

    def __init__(self, spec: str, options: ScorerOptions | None = None) -> None:
        super().__init__(spec)
        if spec not in CLASSICAL:
            raise ValueError(f"unknown full-reference metric {spec!r}; choose one of {CLASSICAL}")

    def score(self, records: Sequence[EditRecord]) -> ScoreOutput:
        sign = -1.0 if self.spec == "gmsd" else 1.0
        scores = []
        for record in track(records, f"scoring {self.spec}"):
            source = load_rgb_tensor(record.source_image)
            edited = load_rgb_tensor(record.edited_image, size=(source.shape[2], source.shape[1]))
            value = sign * full_reference(self.spec, source, edited)
            scores.append([value] * len(self.dims))
        return ScoreOutput(scores=scores, info={"higher_is_better": True, "negated": self.spec == "gmsd"})


def _model_scorer(kind: str) -> Callable[[str, ScorerOptions], Scorer]:
    def build(argument: str, options: ScorerOptions) -> Scorer:
        from ie_eval.eval import model_scorers

        return model_scorers.SCORER_CLASSES[kind](argument, options)

    return build


def _judge(critique: bool) -> Callable[[str, ScorerOptions], Scorer]:
    def build(argument: str, options: ScorerOptions) -> Scorer:
        from ie_eval.eval.judge import JudgeScorer

        return JudgeScorer(argument, options, on_critique=critique)

    return build


# prefix -> builder(argument after the colon, options); models are imported only when asked for.
SCORER_PREFIXES: dict[str, Callable[[str, ScorerOptions], Scorer]] = {
    "rm": _model_scorer("rm"),
    "critic": _model_scorer("critic"),
    "critic-cot": _model_scorer("critic-cot"),
    "pairwise-rm": _model_scorer("pairwise-rm"),
    "judge": _judge(critique=False),
    "judge-rm": _judge(critique=True),
}


def build_scorer(spec: str, options: ScorerOptions | None = None) -> Scorer:
    """A scorer from its SPEC string (module docstring)."""
    options = options or ScorerOptions()
    if spec in CLASSICAL:
        return FullReferenceScorer(spec, options)
    prefix, _, argument = spec.partition(":")
    if prefix not in SCORER_PREFIXES or not argument:
        known = [f"{p}:..." for p in SCORER_PREFIXES] + list(CLASSICAL)
        raise ValueError(f"bad scorer spec {spec!r}; use one of {known}")
    scorer = SCORER_PREFIXES[prefix](argument, options)
    scorer.spec = spec
    return scorer
