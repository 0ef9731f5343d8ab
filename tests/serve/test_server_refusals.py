"""Each bad input gets its documented 4xx naming the field and the limit; the server keeps serving."""

import json

import httpx
import pytest
from serve_helpers import TEST_LIMITS, b64, item_json, load_scoring, make_app, noise_png, png_bytes

from ie_eval.serve.runner import BackgroundServer


def with_image(image, role="source_image"):
    return {"items": [item_json(**{role: image})]}


GOOD = {"items": [item_json()]}
BAD_INPUTS = {
    # name: (json body or raw bytes, status, field, text the message must contain)
    "corrupt base64": (with_image({"base64": "iVBORw0K%%%not-base64"}), 422, "items.0.source_image.base64", "base64"),
    "base64 of non-image": (with_image({"base64": b64(b"hello, not an image")}), 422, "items.0.source_image.base64", "decodable image"),
    "truncated png": (with_image({"base64": b64(png_bytes()[:60])}), 422, "items.0.source_image.base64", "image"),
    "path with ..": (with_image({"path": "../outside.png"}), 403, "items.0.source_image.path", "outside image_root"),
    "absolute path outside": (with_image({"path": "/no/such/dir/x.png"}), 403, "items.0.source_image.path", "outside image_root"),
    "symlink out of root": (with_image({"path": "escape.png"}, "edited_image"), 403, "items.0.edited_image.path", "outside image_root"),
    "missing file": (with_image({"path": "nope.png"}), 404, "items.0.source_image.path", "no such image"),
    "image bytes over limit": (with_image({"base64": b64(noise_png((200, 200)))}), 413, "items.0.source_image.base64", "max_image_bytes"),
    "image file over limit": (with_image({"path": "big.png"}), 413, "items.0.source_image.path", "max_image_bytes"),
    "image pixels over limit": (with_image({"base64": b64(png_bytes(size=(300, 300)))}), 413, "items.0.source_image.base64", "max_image_pixels"),
    "extreme aspect ratio": (with_image({"base64": b64(png_bytes(size=(250, 1)))}), 422, "items.0.source_image", "image size"),
    "both base64 and path": (with_image({"base64": b64(png_bytes()), "path": "good.png"}), 422, "items.0.source_image", "exactly one"),
    "missing critique": ({"items": [{k: v for k, v in item_json().items() if k != "critique"}]}, 422, "items.0.critique", "required"),
    "missing items": ({}, 422, "items", "required"),
    "critique wrong type": ({"items": [item_json(critique=5)]}, 422, "items.0.critique", "string"),
    "items wrong type": ({"items": "all of them"}, 422, "items", "list"),
    "unknown field": ({"items": [item_json(rating=5)]}, 422, "items.0.rating", "not permitted"),
    "empty list": ({"items": []}, 422, "items", "at least 1"),
    "huge list": ({"items": [item_json()] * (TEST_LIMITS["max_items_per_request"] + 1)}, 422, "items", "max_items_per_request=8"),
    "critique too long": ({"items": [item_json(critique="x" * 2001)]}, 422, "items.0.critique", "max_critique_chars=2000"),
    "instruction too long": ({"items": [item_json(instruction="y" * 201)]}, 422, "items.0.instruction", "max_instruction_chars=200"),
    "blank critique": ({"items": [item_json(critique="   ")]}, 422, "items.0.critique", "blank"),
    "lone surrogate": (b'{"items": [' + json.dumps(item_json(critique="PLACEHOLDER")).replace("PLACEHOLDER", "\\ud800").encode() + b"]}", 422, "items.0.critique", "UTF-8"),
    "not json": (b"{not json", 422, "body", "JSON"),
    "body too large": (b" " * (TEST_LIMITS["max_body_bytes"] + 1), 413, "body", "max_body_bytes=300000"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_refused_naming_field_and_limit_then_server_still_serves(name, http):
    body, status, field, text = BAD_INPUTS[name]
    if isinstance(body, bytes):
        response = http.post("/v1/score", content=body, headers={"content-type": "application/json"})
    else:
        response = http.post("/v1/score", json=body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["field"] == field, answer
    assert text.lower() in answer["detail"].lower() and field in answer["detail"], answer
    good = http.post("/v1/score", json=GOOD)
    assert good.status_code == 200 and len(good.json()["results"]) == 1


def test_path_inside_image_root_is_scored_like_its_base64(http):
    by_path = http.post("/v1/score", json=with_image({"path": "good.png"}))
    by_bytes = http.post("/v1/score", json=with_image({"base64": b64(png_bytes())}))
    assert by_path.status_code == 200, by_path.text
    assert by_path.json()["results"] == by_bytes.json()["results"]


def test_streamed_body_over_the_limit_is_refused_without_content_length(http):
    def chunks():
        for _ in range(4):
            yield b" " * (TEST_LIMITS["max_body_bytes"] // 3)

    response = http.post("/v1/score", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["field"] == "body"
    assert http.post("/v1/score", json=GOOD).status_code == 200


def test_path_inputs_are_refused_when_no_image_root_is_configured(tiny_rm_dir):
    with BackgroundServer(make_app(load_scoring(tiny_rm_dir), image_root=None)) as server:
        response = httpx.post(f"{server.url}/v1/score", json=with_image({"path": "good.png"}), timeout=30)
    assert response.status_code == 403 and response.json()["field"] == "items.0.source_image.path"
    assert "no image_root configured" in response.json()["detail"]
