"""Schemathesis against the live server's OpenAPI schema: no input makes it answer 5xx.

Uses schemathesis' Python API (operation strategies + hypothesis) rather than its pytest
plugin: a bounded number of valid-by-schema and schema-violating cases per operation.
"""

import json
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from serve_helpers import TEST_LIMITS, item_json

EXAMPLES_PER_OPERATION = 60


@pytest.fixture(scope="module")
def operations(server):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_schema_documents_every_endpoint_and_field(operations, http):
    labels = {op.label for op in operations}
    assert labels == {"GET /healthz", "GET /v1/info", "POST /v1/score"}
    components = http.get("/openapi.json").json()["components"]["schemas"]
    for name in ("ScoreRequest", "ScoreItem", "ImageInput", "ScoreResult", "ScoreResponse", "ErrorResponse",
                 "InfoResponse", "HealthResponse"):
        for field, spec in components[name]["properties"].items():
            assert spec.get("description"), f"{name}.{field} has no description"
    assert components["ScoreRequest"]["properties"]["items"]["maxItems"] == TEST_LIMITS["max_items_per_request"]
    assert components["ScoreItem"]["properties"]["critique"]["maxLength"] == TEST_LIMITS["max_critique_chars"]


def fuzz_operation(operation, mode, url, statuses):
    """Run EXAMPLES_PER_OPERATION generated cases; not_a_server_error fails on any 5xx."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case):
        response = case.call_and_validate(base_url=url, checks=[not_a_server_error], timeout=30)
        statuses.append((operation.label, response.status_code))
        if response.status_code < 500 and response.status_code != 200:
            assert response.json()["field"], response.text  # every refusal names what it refuses

    fuzz()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_no_generated_input_makes_the_server_error(operations, server, mode):
    statuses = []
    for operation in operations:
        if mode == GenerationMode.NEGATIVE and not operation.get_request_payload_content_types():
            continue  # nothing to violate in a GET without parameters
        fuzz_operation(operation, mode, server.url, statuses)
    print(mode.value, sorted(Counter(statuses).items()))  # shown with -s
    assert sum(label == "POST /v1/score" for label, _ in statuses) >= EXAMPLES_PER_OPERATION // 2
    assert server.app.state.batcher.running


TEXT = st.text(st.characters(codec=None), max_size=300)  # any code point, surrogates and controls included


@given(instruction=TEXT, critique=TEXT)
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_any_text_with_valid_images_is_scored_or_refused_never_a_server_error(server, instruction, critique):
    import httpx

    body = json.dumps({"items": [item_json(instruction=instruction, critique=critique)]})
    response = httpx.post(f"{server.url}/v1/score", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert response.json()["field"] in ("items.0.instruction", "items.0.critique"), response.text
