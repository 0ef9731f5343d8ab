"""Request and response models of the reward server; their Field descriptions are the OpenAPI docs.

Limits that depend on `ServeConfig` (image bytes, critique length, items per request...) are
checked by the server after parsing, with messages naming the field and the limit; the
static ones (types, required fields, a non-empty item list) live here. An item comes in one of
two forms: the server's own fields (`ScoreItem`) or a Qwen-VL chat conversation (`ChatItem`),
told apart by whether it has `messages`; the union tags never show in error field paths.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

# Tags of the two item forms; `errors.field_path` drops them from validation error locations.
FIELDS_FORM, MESSAGES_FORM = "fields-form", "messages-form"
UNION_TAGS = frozenset({FIELDS_FORM, MESSAGES_FORM})
_FIELD_NAMES = ("source_image", "edited_image", "instruction", "critique")
_ONE_FORM = "give either 'messages' (a chat conversation) or source_image, edited_image, instruction and critique"


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

    @model_validator(mode="before")
    @classmethod
    def some_field_given(cls, data: Any) -> Any:
        if isinstance(data, dict) and not set(data) & set(_FIELD_NAMES):
            raise ValueError(_ONE_FORM)
        return data


class ChatMessage(BaseModel):
    """One chat message; its content is checked by `ie_eval.data.chat_inputs.split_edit_messages`."""

    model_config = ConfigDict(extra="forbid")

    role: str = Field(description="'user' (the two images and the instruction) or 'assistant' (the critique).")
    content: str | list[dict[str, Any]] = Field(
        description="Text, or a list of content items: {'type': 'image', 'image': <path under image_root, "
        "file:// URL or data:image/<format>;base64,<data>>, optional 'min_pixels' / 'max_pixels'} and "
        "{'type': 'text', 'text': ...}. http(s) URLs and video are refused."
    )


class ChatItem(BaseModel):
    """One critique of one edit as a Qwen-VL conversation: a user message with exactly two images
    (source first, edited second) and one text item (the instruction), then an assistant message
    whose text is the critique to score. Images are resized by qwen_vl_utils.process_vision_info
    within the model's pixel budget (a per-image min_pixels / max_pixels can narrow it)."""

    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessage] = Field(
        min_length=1,
        description="The conversation; instruction and critique obey max_instruction_chars / max_critique_chars.",
        examples=[[
            {"role": "user", "content": [
                {"type": "image", "image": "data:image/png;base64,iVBORw0KGgo..."},
                {"type": "image", "image": "edits/0001.png"},
                {"type": "text", "text": "make the red circle blue"},
            ]},
            {"role": "assistant", "content": "[Visual Quality]\nSharp.\n[Final Assessment]\nVisual Quality: 4"},
        ]],
    )

    @model_validator(mode="before")
    @classmethod
    def not_both_forms(cls, data: Any) -> Any:
        if isinstance(data, dict) and set(data) & set(_FIELD_NAMES):
            raise ValueError(f"{_ONE_FORM}, not both")
        return data


def item_form(value: Any) -> str:
    """Which form an item is in: a chat conversation when it has `messages`."""
    return MESSAGES_FORM if isinstance(value, dict) and "messages" in value else FIELDS_FORM


AnyItem = Annotated[
    Annotated[ScoreItem, Tag(FIELDS_FORM)] | Annotated[ChatItem, Tag(MESSAGES_FORM)], Discriminator(item_form)
]


class ScoreRequest(BaseModel):
    """A batch of critiques to score; the server may batch it with other clients' requests."""

    model_config = ConfigDict(extra="forbid")

    items: list[AnyItem] = Field(
        min_length=1,
        description="Critiques to score, 1 to max_items_per_request of them, each as image fields or as chat "
        "messages; results come back in this order.",
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
    share_prefixes: bool = Field(description="Whether rows sharing images and instruction run that prefix once.")
    version: str = Field(description="ie-eval version of the server.")
    limits: dict[str, int | float] = Field(description="Request limits (bytes, pixels, characters, items, seconds).")
