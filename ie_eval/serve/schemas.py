"""Request and response models of the reward server; their Field descriptions are the OpenAPI docs.

Limits that depend on `ServeConfig` (image bytes, critique length, items per request...) are
checked by the server after parsing, with messages naming the field and the limit; the
static ones (types, required fields, a non-empty item list) live here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ImageInput(BaseModel):
    """An image, given exactly one way: inline base64 bytes or a path under the server's image root."""

    model_config = ConfigDict(extra="forbid")

    base64: str | None = Field(
        default=None,
        description="The encoded image file (PNG, JPEG, WebP, ...) as standard base64; at most "
        "max_image_bytes once decoded and max_image_pixels in width x height.",
        examples=["iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"],
    )
    path: str | None = Field(
        default=None,
        description="A file path, relative to the server's image_root or absolute; refused unless it "
        "resolves (symlinks and '..' followed) to a regular file inside image_root.",
    )

    @model_validator(mode="after")
    def exactly_one_source(self) -> ImageInput:
        if (self.base64 is None) == (self.path is None):
            raise ValueError("give exactly one of 'base64' or 'path'")
        return self


class ScoreItem(BaseModel):
    """One candidate critique of one edit."""

    model_config = ConfigDict(extra="forbid")

    source_image: ImageInput = Field(description="The image before the edit.")
    edited_image: ImageInput = Field(description="The image after the edit.")
    instruction: str = Field(
        description="The edit instruction, non-blank, at most max_instruction_chars characters.",
        examples=["make the red circle blue"],
    )
    critique: str = Field(
        description="The candidate critique to score, non-blank, at most max_critique_chars characters.",
        examples=["[Visual Quality]\nSharp.\n[Final Assessment]\nVisual Quality: 4"],
    )


class ScoreRequest(BaseModel):
    """A batch of critiques to score; the server may batch it with other clients' requests."""

    model_config = ConfigDict(extra="forbid")

    items: list[ScoreItem] = Field(
        min_length=1,
        description="Critiques to score, 1 to max_items_per_request of them; results come back in this order.",
    )


class ScoreResult(BaseModel):
    """RE-Reward's scores of one critique."""

    logicality: float = Field(description="Is the critique internally consistent and well reasoned.")
    accuracy: float = Field(description="Does the critique match what the images show.")
    usefulness: float = Field(description="Would the critique help improve the edit.")
    reward: float = Field(
        description="Weighted scalar reward w_l*logicality + w_a*accuracy + w_u*usefulness "
        "(weights in GET /v1/info; accuracy weighted highest by default)."
    )


class ScoreResponse(BaseModel):
    """One result per request item, in request order."""

    results: list[ScoreResult] = Field(description="Scores of items[i] at index i.")
    model: str = Field(description="Backbone of the served reward model.")


class ErrorResponse(BaseModel):
    """Every refusal: which field, why, and (in the message) the limit it broke."""

    detail: str = Field(description="Human-readable reason, naming the field and the limit.")
    field: str | None = Field(default=None, description="Dotted path of the offending field, e.g. items.0.critique.")


class HealthResponse(BaseModel):
    """Liveness and load."""

    status: str = Field(description="'ok' while the batcher is running.")
    queued_requests: int = Field(description="Requests waiting for the model now.")
    batches: int = Field(description="Forward batches run since start.")
    items_scored: int = Field(description="Items scored since start (items_scored / batches = mean batch size).")


class InfoResponse(BaseModel):
    """What is served and under which limits."""

    model: str = Field(description="Backbone name or path of the reward model.")
    family: str = Field(description="Qwen-VL family of the backbone.")
    adapter: str | None = Field(description="Adapter kind the model was trained with (lora, adalora, full) or null.")
    pooling: str = Field(description="How the prompt's hidden states are pooled for the heads.")
    dims: list[str] = Field(description="Score dimensions, in ScoreResult order.")
    reward_weights: list[float] = Field(description="Weights of the scalar reward, in `dims` order.")
    device: str = Field(description="Torch device of the model.")
    version: str = Field(description="ie-eval version of the server.")
    limits: dict[str, int | float] = Field(description="Request limits (bytes, pixels, characters, items, seconds).")
