"""Back-pressure and the client: full queue -> 503 + Retry-After, timeouts, retries, a dead server."""

import threading
import time

import httpx
import pytest
from serve_helpers import item_json, load_scoring, make_app, reward_item

from ie_eval.serve.base import RewardServerError
from ie_eval.serve.client import RewardClient
from ie_eval.serve.runner import BackgroundServer

GOOD = {"items": [item_json()]}


class GatedServer:
    """A real server whose model worker blocks until `release()`: the queue behind it fills up."""

    def __init__(self, scoring, **config):
        self.app = make_app(scoring, **{"max_batch_size": 1, "max_wait_ms": 0.0, **config})
        batcher = self.app.state.batcher
        self.gate, self.entered = threading.Event(), threading.Event()
        score = batcher.score_fn

        def gated_score(records):
            self.entered.set()
            self.gate.wait(60)
            return score(records)

        batcher.score_fn = gated_score
        self.server = BackgroundServer(self.app).start()
        self.url = self.server.url

    def queued(self):
        return self.app.state.batcher.queue.qsize()

    def release(self):
        self.gate.set()

    def close(self):
        self.gate.set()
        self.server.stop()


@pytest.fixture(scope="module")
def shared_scoring(tiny_rm_dir):
    return load_scoring(tiny_rm_dir, batch_size=1)


@pytest.fixture
def gated(shared_scoring):
    servers = []

    def start(scoring=None, **config):
        servers.append(GatedServer(scoring or shared_scoring, **config))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def post_in_thread(url, results, body=GOOD):
    def run():
        response = httpx.post(f"{url}/v1/score", json=body, timeout=60)
        results.append((response.status_code, response.json()))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_until(condition, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def fill(server, waiting):
    """One request in the (blocked) worker and `waiting` in the queue; returns threads + statuses."""
    statuses = []
    threads = [post_in_thread(server.url, statuses)]
    wait_until(server.entered.is_set)
    for _ in range(waiting):
        threads.append(post_in_thread(server.url, statuses))
    wait_until(lambda: server.queued() == waiting)
    return threads, statuses


def test_full_queue_answers_503_with_retry_after_then_drains(gated):
    server = gated(max_queue=2, retry_after_s=1)
    threads, statuses = fill(server, waiting=2)
    refused = httpx.post(f"{server.url}/v1/score", json=GOOD, timeout=10)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["field"] == "queue" and "max_queue=2" in refused.json()["detail"]
    server.release()
    for thread in threads:
        thread.join(60)
    assert [status for status, _ in statuses] == [200, 200, 200]
    assert httpx.post(f"{server.url}/v1/score", json=GOOD, timeout=30).status_code == 200


def test_a_bad_request_batched_with_good_ones_fails_alone(gated, tiny_rm_dir):
    server = gated(scoring=load_scoring(tiny_rm_dir, max_length=200), max_batch_size=8, max_wait_ms=50.0)
    threads, statuses = fill(server, waiting=0)
    too_long = {"items": [item_json(), item_json(critique="word " * 300)]}  # over max_length tokens
    for body in (GOOD, too_long, GOOD):
        threads.append(post_in_thread(server.url, statuses, body))
    wait_until(lambda: server.queued() == 3)
    server.release()
    for thread in threads:
        thread.join(60)
    assert sorted(status for status, _ in statuses) == [200, 200, 200, 422]
    refusal = next(answer for status, answer in statuses if status == 422)
    assert refusal["field"] == "items.1" and "max_length" in refusal["detail"]
    assert server.app.state.batcher.batches_run >= 3  # the shared batch failed, then each alone


def test_request_not_scored_in_time_is_503_naming_the_timeout(gated):
    server = gated(request_timeout_s=0.3)
    threads, statuses = fill(server, waiting=0)
    late = httpx.post(f"{server.url}/v1/score", json=GOOD, timeout=10)
    assert late.status_code == 503 and "retry-after" in late.headers
    assert late.json()["field"] == "timeout" and "request_timeout_s=0.3" in late.json()["detail"]
    server.release()
    threads[0].join(60)
    assert httpx.post(f"{server.url}/v1/score", json=GOOD, timeout=30).status_code == 200


class RecordingTransport(httpx.HTTPTransport):
    """Remembers the status of every answer the client received."""

    def __init__(self):
        super().__init__()
        self.statuses = []

    def handle_request(self, request):
        response = super().handle_request(request)
        self.statuses.append(response.status_code)
        return response


def test_client_retries_a_503_then_succeeds(gated, local_reward):
    server = gated(max_queue=1, retry_after_s=1)
    threads, _ = fill(server, waiting=1)
    transport = RecordingTransport()
    client = RewardClient(server.url, max_retries=5, backoff_s=0.05, transport=transport)
    item = reward_item("[Visual Quality]\nRetried.")
    outcome = []
    caller = threading.Thread(target=lambda: outcome.append(client.score([item])))
    caller.start()
    wait_until(lambda: 503 in transport.statuses)
    server.release()
    caller.join(60)
    for thread in threads:
        thread.join(60)
    assert transport.statuses[0] == 503 and transport.statuses[-1] == 200
    assert outcome[0][0].as_dict() == pytest.approx(local_reward.score([item])[0].as_dict(), abs=1e-5)


def test_client_raises_a_clear_error_when_the_server_is_gone(shared_scoring):
    server = BackgroundServer(make_app(shared_scoring)).start()
    url = server.url
    server.stop()
    client = RewardClient(url, max_retries=2, backoff_s=0.01, timeout_s=2)
    with pytest.raises(RewardServerError, match=r"failed after 3 attempts; last error: Connect") as raised:
        client.score([reward_item("[Visual Quality]\nAnyone there?")])
    assert raised.value.status is None


def test_client_does_not_retry_a_refusal_and_names_the_field(server):
    transport = RecordingTransport()
    client = RewardClient(server.url, max_retries=5, transport=transport)
    with pytest.raises(RewardServerError, match="items.0.critique") as raised:
        client.score([reward_item("   ")])
    assert raised.value.status == 422 and raised.value.field == "items.0.critique"
    assert transport.statuses == [422]


def test_client_splits_into_batches_and_keeps_order(server, local_reward):
    items = [reward_item(f"[Visual Quality]\nItem {k}." + " ok" * k, seed=k) for k in range(7)]
    with RewardClient(server.url, batch_size=3, max_concurrency=3) as client:
        got = client.score(items)
        assert client.score([]) == []
    expected = local_reward.score(items)
    assert [g.as_dict() for g in got] == [pytest.approx(e.as_dict(), abs=1e-5) for e in expected]
