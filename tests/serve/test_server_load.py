"""Concurrent clients on the real server: every answer exactly once, in order, equal to RewardScoring."""

import threading

import pytest
from serve_helpers import item_json, reward_item

from ie_eval.serve.base import RewardItem
from ie_eval.serve.client import RewardClient

CLIENTS, REQUESTS_PER_CLIENT = 16, 50


def critique(k):
    """Distinct critiques (so distinct scores): a misrouted answer would not match."""
    return f"[Visual Quality]\nRequest {k}." + " Blue." * (k % 7)


def close(a, b):
    return a.as_dict() == pytest.approx(b.as_dict(), abs=1e-5)


@pytest.fixture
def path_items(image_pair_factory):
    """REQUESTS_PER_CLIENT distinct items with file images (the client sends file bytes as base64)."""
    source, edited = image_pair_factory("load")
    return [RewardItem(source, edited, "make the red circle blue", critique(k)) for k in range(REQUESTS_PER_CLIENT)]


def test_concurrent_clients_get_every_answer_once_in_order(server, local_reward, path_items):
    expected = local_reward.score(path_items)
    scored_before = server.app.state.batcher.items_scored
    # Client c sends items c, c+1, ... (mod n): clients are on different items at any moment.
    plan = {c: [(c + k) % REQUESTS_PER_CLIENT for k in range(REQUESTS_PER_CLIENT)] for c in range(CLIENTS)}
    answers = {c: [] for c in range(CLIENTS)}
    failures = []

    def run_client(c):
        try:
            with RewardClient(server.url, batch_size=1, max_retries=3, timeout_s=60) as client:
                for index in plan[c]:
                    answers[c].append(client.score([path_items[index]]))
        except Exception as err:  # surfaced by the assert below, with the client's id
            failures.append((c, repr(err)))

    threads = [threading.Thread(target=run_client, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures
    for c in range(CLIENTS):
        assert len(answers[c]) == REQUESTS_PER_CLIENT
        for index, results in zip(plan[c], answers[c], strict=True):
            assert len(results) == 1 and close(results[0], expected[index]), (c, index)
    # The model scored each request's item exactly once: nothing dropped, nothing run twice.
    assert server.app.state.batcher.items_scored - scored_before == CLIENTS * REQUESTS_PER_CLIENT


def test_one_request_with_many_items_answers_in_item_order(http, local_reward):
    critiques = [critique(k) + " pad" * (7 * k % 11) for k in range(8)]
    response = http.post("/v1/score", json={"items": [item_json(text, seed=k) for k, text in enumerate(critiques)]})
    assert response.status_code == 200, response.text
    expected = local_reward.score([reward_item(text, seed=k) for k, text in enumerate(critiques)])
    for got, want in zip(response.json()["results"], expected, strict=True):
        assert got == pytest.approx(want.as_dict(), abs=1e-5)


def test_healthz_and_info_report_model_weights_and_limits(http):
    assert http.get("/healthz").json()["status"] == "ok"
    info = http.get("/v1/info").json()
    assert info["model"] == "tiny-qwen3-vl" and info["pooling"] == "prefill" and info["adapter"] is None
    assert info["dims"] == ["logicality", "accuracy", "usefulness"]
    assert info["reward_weights"] == pytest.approx([0.3, 0.4, 0.3]) and info["version"]
    assert info["limits"]["max_items_per_request"] == 8
