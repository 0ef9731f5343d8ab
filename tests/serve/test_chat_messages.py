"""Items given as Qwen-VL chat messages score like the same items in the server's own fields."""

import pytest
from serve_helpers import TEST_LIMITS, b64, noise_png, png_bytes

INSTRUCTION = "make the red square blue"
CRITIQUE = "[Visual Quality]\nSharp.\n[Final Assessment]\nVisual Quality: 4"
# Sizes the 64x64 budget resizes (100x70 even flips under a second smart_resize), so both paths resize.
SOURCE = png_bytes(size=(100, 70), seed=1)
EDITED = png_bytes(size=(90, 120), color=(30, 30, 200), seed=4)


def data_url(raw):
    return f"data:image/png;base64,{b64(raw)}"


def fields_item(source=SOURCE, edited=EDITED, critique=CRITIQUE):
    return {"source_image": {"base64": b64(source)}, "edited_image": {"base64": b64(edited)},
            "instruction": INSTRUCTION, "critique": critique}


def chat_item(source=None, edited=None, instruction=INSTRUCTION, critique=CRITIQUE):
    """The chat form of fields_item(): images as data URLs unless given."""
    messages = [{"role": "user", "content": [
        {"type": "image", "image": source or data_url(SOURCE)},
        {"type": "image", "image": edited or data_url(EDITED)},
        {"type": "text", "text": instruction},
    ]}]
    if critique is not None:
        messages.append({"role": "assistant", "content": critique})
    return {"messages": messages}


def scores(http, items):
    response = http.post("/v1/score", json={"items": items})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def assert_same_scores(got, expected):
    """Per item, within float noise: the micro-batcher may pad a request with another's items."""
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a == pytest.approx(b, abs=1e-5)


def test_a_messages_request_scores_like_the_same_request_in_fields(http):
    critiques = [CRITIQUE, CRITIQUE + " The sky is fine.", "[Visual Quality]\nBlurry."]
    by_fields = scores(http, [fields_item(critique=c) for c in critiques])
    by_messages = scores(http, [chat_item(critique=c) for c in critiques])
    assert_same_scores(by_messages, by_fields)
    assert len({round(r["reward"], 6) for r in by_fields}) == 3  # distinct items, so order is checked too
    swapped = scores(http, [chat_item(source=data_url(EDITED), edited=data_url(SOURCE))])
    assert swapped[0]["reward"] != pytest.approx(by_fields[0]["reward"], abs=1e-5)  # the images do matter


def test_both_forms_mix_in_one_request_in_order(http):
    mixed = scores(http, [chat_item(critique=CRITIQUE + " a"), fields_item(critique=CRITIQUE + " b")])
    alone = scores(http, [fields_item(critique=CRITIQUE + " a"), fields_item(critique=CRITIQUE + " b")])
    assert_same_scores(mixed, alone)


def test_message_paths_and_file_urls_read_under_image_root(http, image_root):
    good = {"base64": b64(png_bytes())}
    expected = scores(http, [{**fields_item(), "source_image": good, "edited_image": good}])
    relative = scores(http, [chat_item(source="good.png", edited=f"file://{image_root / 'good.png'}")])
    assert_same_scores(relative, expected)


def _with_user(*content, critique=CRITIQUE):
    messages = [{"role": "user", "content": list(content)}]
    return {"messages": messages + [{"role": "assistant", "content": critique}]}


IMG, TXT = {"type": "image", "image": data_url(SOURCE)}, {"type": "text", "text": INSTRUCTION}
BAD_ITEMS = {
    # name: (item, status, field, text the message must contain)
    "both forms": ({**chat_item(), "critique": CRITIQUE}, 422, "items.0", "not both"),
    "neither form": ({"rating": 5}, 422, "items.0", "give either 'messages'"),
    "empty messages": ({"messages": []}, 422, "items.0.messages", "at least 1"),
    "one image": (_with_user(IMG, TXT), 422, "items.0.messages.0.content", "exactly two images"),
    "video": (_with_user(IMG, IMG, {"type": "video", "video": "v.mp4"}, TXT), 422, "items.0.messages.0.content.2",
              "video"),
    "no instruction": (_with_user(IMG, IMG), 422, "items.0.messages.0.content", "exactly one text item"),
    "http url": (_with_user(IMG, {"type": "image", "image": "http://example.com/e.png"}, TXT), 422,
                 "items.0.messages.0.content.1.image", "network"),
    "no critique": (chat_item(critique=None), 422, "items.0.messages", "assistant message"),
    "path outside image_root": (chat_item(source="../outside.png"), 403, "items.0.messages.0.content.0.image",
                                "outside image_root"),
    "image over max_image_bytes": (chat_item(edited=data_url(noise_png((200, 200)))), 413,
                                   "items.0.messages.0.content.1.image", "max_image_bytes"),
    "image too thin for the budget": (chat_item(source=data_url(png_bytes(size=(250, 8)))), 422,
                                      "items.0.messages.0.content.0.image", "too elongated"),
    "critique too long": (chat_item(critique="x" * (TEST_LIMITS["max_critique_chars"] + 1)), 422,
                          "items.0.messages.1.content", "max_critique_chars"),
    "instruction too long": (chat_item(instruction="y" * (TEST_LIMITS["max_instruction_chars"] + 1)), 422,
                             "items.0.messages.0.content.2.text", "max_instruction_chars"),
    "min_pixels over the budget": (_with_user({**IMG, "min_pixels": 10**9}, IMG, TXT), 422,
                                   "items.0.messages.0.content.0.image", "model's budget"),
}


@pytest.mark.parametrize("name", list(BAD_ITEMS))
def test_bad_chat_items_are_refused_naming_the_part_then_the_server_still_serves(name, http):
    item, status, field, text = BAD_ITEMS[name]
    response = http.post("/v1/score", json={"items": [item]})
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["field"] == field, answer
    assert text.lower() in answer["detail"].lower() and answer["detail"].startswith(field), answer
    assert len(scores(http, [chat_item()])) == 1


def test_openapi_documents_the_chat_form(http):
    components = http.get("/openapi.json").json()["components"]["schemas"]
    forms = components["ScoreRequest"]["properties"]["items"]["items"]["oneOf"]
    assert {form["$ref"].rsplit("/", 1)[1] for form in forms} == {"ScoreItem", "ChatItem"}
    for name in ("ChatItem", "ChatMessage"):
        assert all(spec.get("description") for spec in components[name]["properties"].values()), name
