"""Rows of a collated multimodal batch: which images each row holds, and a batch of chosen rows.

A collated Qwen-VL batch keeps its images apart from its token rows: `pixel_values` holds each
image's t * h * w patch rows one image after another (rows in order, each row's images in order)
and `image_grid_thw` one (t, h, w) row per image. Selecting or repeating token rows must carry
their images along, image by image.
"""

from __future__ import annotations

from typing import Any

import torch

# (B, T) per-token keys of a collated batch that the model reads.
TOKEN_KEYS: tuple[str, ...] = ("input_ids", "attention_mask", "mm_token_type_ids")


def images_per_row(input_ids: torch.Tensor, vision_start_token_id: int) -> torch.Tensor:
    """(B,) number of images in each row: one `<|vision_start|>` token per image."""
    return (input_ids == vision_start_token_id).sum(dim=1)


def row_image_indices(row_images: torch.Tensor) -> list[list[int]]:
    """Per row, the indices of its images in `image_grid_thw` (and their order in `pixel_values`)."""
    first = (torch.cumsum(row_images, 0) - row_images).tolist()
    return [list(range(f, f + int(n))) for f, n in zip(first, row_images.tolist(), strict=True)]


def image_patches(inputs: dict[str, Any]) -> list[torch.Tensor]:
    """Each image's patch rows of `pixel_values`, in image order."""
    return list(inputs["pixel_values"].split(inputs["image_grid_thw"].prod(dim=1).tolist()))


def gather_rows(inputs: dict[str, Any], rows: torch.Tensor, row_images: torch.Tensor) -> dict[str, Any]:
    """Model inputs of rows `rows` (any order, repeats allowed), each with its own images.

    inputs: `model_inputs(batch)`; row_images: (B,) images per row (`images_per_row`).
    """
    out = {key: inputs[key][rows] for key in TOKEN_KEYS if key in inputs}
    if "pixel_values" not in inputs:
        return out
    per_row = row_image_indices(row_images)
    images = [i for r in rows.tolist() for i in per_row[r]]
    chunks = image_patches(inputs)
    out["pixel_values"] = torch.cat([chunks[i] for i in images])
    out["image_grid_thw"] = inputs["image_grid_thw"][images]
    return out
