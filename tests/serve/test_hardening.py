"""Bounded work per request and clean refusals, against a real uvicorn on 127.0.0.1: decompression
bombs, formats outside the allow-list, pixel budgets, a flood of maximal requests, slow clients,
bearer tokens and a model that keeps failing."""

from __future__ import annotations

import io
import json
import resource
import socket
import threading
import time
import zlib

import httpx
import pytest
from serve_helpers import TEST_LIMITS, b64, item_json, load_scoring, make_app, png_bytes

from ie_eval.serve.runner import BackgroundServer


def bomb_png(side: int) -> bytes:
    """A valid PNG of side x side black pixels that compresses to a few kilobytes."""
    raw = zlib.compress(b"".join(b"\x00" + b"\x00" * (3 * side) for _ in range(side)), 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def eps_bytes() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nnewpath 0 0 moveto 64 64 lineto stroke\nshowpage\n"


def start_strict_server(tiny_rm_dir):
    """A server with a small per-request pixel budget and few connections."""
    limits = dict(TEST_LIMITS, max_image_pixels=10_000_000, max_request_pixels=40_000,
                  max_decode_pixels_in_flight=80_000, max_connections=8, request_timeout_s=5.0)
    return BackgroundServer(make_app(load_scoring(tiny_rm_dir), **limits), limit_concurrency=8).start()


@pytest.fixture(scope="module")
def strict_server(tiny_rm_dir):
    server = start_strict_server(tiny_rm_dir)
    yield server
    server.stop()


@pytest.fixture()
def idle_strict_server(tiny_rm_dir):
    """Its own server: connections an earlier test left closing would count against the limit."""
    server = start_strict_server(tiny_rm_dir)
    yield server
    server.stop()


def post(server, body, **headers):
    return httpx.post(f"{server.url}/v1/score", json=body, timeout=30, headers=headers)


def test_a_decompression_bomb_is_refused_from_its_header(strict_server):
    data = bomb_png(4_000)  # 16 Mpx, 48 MB decoded, from a ~50 KB file
    assert len(data) < TEST_LIMITS["max_image_bytes"]
    response = post(strict_server, {"items": [item_json(source_image={"base64": b64(data)})]})
    assert response.status_code == 413 and "max_image_pixels" in response.json()["detail"]


def test_an_eps_upload_is_refused_unopened(strict_server):
    response = post(strict_server, {"items": [item_json(edited_image={"base64": b64(eps_bytes())})]})
    assert response.status_code == 415, response.text
    assert response.json()["field"] == "items.0.edited_image.base64" and "EPS" in response.json()["detail"]


def test_a_gif_is_outside_the_default_formats(strict_server):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buffer, format="GIF")
    response = post(strict_server, {"items": [item_json(source_image={"base64": b64(buffer.getvalue())})]})
    assert response.status_code == 415 and "image_formats" in response.json()["detail"]


def test_the_request_pixel_budget_sums_every_image(strict_server):
    big = b64(png_bytes(size=(150, 150)))  # 22,500 px each: one is fine, two are over 40,000
    one = post(strict_server, {"items": [item_json(source_image={"base64": big})]})
    assert one.status_code == 200, one.text
    two = post(strict_server, {"items": [item_json(source_image={"base64": big}, edited_image={"base64": big})]})
    assert two.status_code == 413 and "max_request_pixels=40000" in two.json()["detail"]


def test_too_many_items_are_refused_before_any_item_is_validated(strict_server):
    body = {"items": [{"garbage": i} for i in range(TEST_LIMITS["max_items_per_request"] + 1)]}
    response = post(strict_server, body)
    assert response.status_code == 422 and response.json()["field"] == "items"
    assert "max_items_per_request" in response.json()["detail"]


def test_a_flood_of_maximal_requests_is_answered_with_refusals_and_bounded_memory(strict_server):
    """32 clients x the largest admissible requests (4 items, 32,768 of the 40,000 pixels a request may
    decode): every answer is 200 or 503 (queue full, connection limit, deadline), the server keeps
    serving, and its process grows by less than 400 MB."""
    body = json.dumps({"items": [item_json(seed=i) for i in range(4)]})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    statuses: list[int] = []

    def client():
        with httpx.Client(timeout=60) as http:
            for _ in range(3):
                try:
                    statuses.append(http.post(f"{strict_server.url}/v1/score", content=body,
                                              headers={"content-type": "application/json"}).status_code)
                except httpx.HTTPError:
                    statuses.append(-1)

    threads = [threading.Thread(target=client) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert set(statuses) <= {200, 503, -1} and statuses.count(-1) < len(statuses) // 2, statuses
    assert 200 in statuses
    assert grown_mb < 400, grown_mb
    assert post(strict_server, {"items": [item_json()]}).status_code == 200


def read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response: the headers, then as many body bytes as content-length says."""
    data = b""
    while b"\r\n\r\n" not in data and (chunk := sock.recv(4096)):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length and (chunk := sock.recv(4096)):
        body += chunk
    return head + b"\r\n\r\n" + body


def test_slow_clients_holding_connections_do_not_stop_the_server(idle_strict_server):
    """Connections that send half a body and stall: the rest are refused once the connection limit is
    reached (503), and once the stalled ones time out or go away, the server answers again."""
    stalled = []
    for _ in range(12):
        sock = socket.create_connection((idle_strict_server.host, idle_strict_server.port), timeout=10)
        sock.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"items\": [")
        stalled.append(sock)
        # uvicorn counts open connections when it reads a request's headers: let each be read before
        # the next opens, or all twelve can be counted at once and every one refused.
        time.sleep(0.3)
    response = httpx.post(f"{idle_strict_server.url}/v1/score", json={"items": [item_json()]}, timeout=30)
    assert response.status_code in (200, 503)
    # Admitted connections hit their handler's deadline (request_timeout_s=5 covers the body read);
    # those past the connection limit get uvicorn's plain 503 at once.
    answers = []
    for sock in stalled:
        sock.settimeout(15)
        answers.append(read_response(sock))
    assert all(answer.startswith(b"HTTP/1.1 503") for answer in answers)
    timed_out = [answer for answer in answers if b"request_timeout_s" in answer]
    assert timed_out, answers
    for sock in stalled:
        sock.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if post(idle_strict_server, {"items": [item_json()]}).status_code == 200:
            return
        time.sleep(0.5)
    raise AssertionError("the server did not recover after the slow clients left")


def test_a_bearer_token_is_required_when_configured(tiny_rm_dir, tmp_path):
    token = "s3cret-token-0123456789"
    from ie_eval.serve.app import create_app
    from ie_eval.serve.config import ServeConfig

    app = create_app(load_scoring(tiny_rm_dir), ServeConfig(**TEST_LIMITS), api_key=token)
    with BackgroundServer(app) as server:
        assert httpx.get(f"{server.url}/healthz").status_code == 200  # liveness stays open
        assert post(server, {"items": [item_json()]}).status_code == 401
        assert post(server, {"items": [item_json()]}, Authorization="Bearer wrong").status_code == 401
        assert post(server, {"items": [item_json()]}, Authorization=f"Bearer {token}").status_code == 200
        from serve_helpers import reward_item

        from ie_eval.serve.client import RewardClient

        assert len(RewardClient(server.url, api_key=token).score([reward_item("fine")])) == 1


def test_binding_beyond_loopback_without_a_token_is_refused(tiny_rm_dir, tmp_path):
    from ie_eval.commands.serve_rm import main

    assert main(["--ckpt", str(tiny_rm_dir), "--host", "0.0.0.0"]) == 2
    short = tmp_path / "key"
    short.write_text("short")
    assert main(["--ckpt", str(tiny_rm_dir), "--host", "0.0.0.0", "--api-key-file", str(short)]) == 2


def test_healthz_reports_a_model_that_keeps_failing(tiny_rm_dir):
    from ie_eval.serve.app import create_app
    from ie_eval.serve.config import ServeConfig

    scoring = load_scoring(tiny_rm_dir)
    broken = {"on": False}
    real = scoring.score_records

    def score_records(records):
        if broken["on"]:
            raise RuntimeError("CUDA error: device-side assert triggered")
        return real(records)

    scoring.score_records = score_records
    app = create_app(scoring, ServeConfig(**TEST_LIMITS, unhealthy_after_failures=2))
    with BackgroundServer(app) as server:
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        broken["on"] = True
        for _ in range(2):
            assert post(server, {"items": [item_json()]}).status_code == 500
        health = httpx.get(f"{server.url}/healthz")
        assert health.status_code == 503 and "CUDA error" in health.json()["detail"]
        broken["on"] = False
        assert post(server, {"items": [item_json()]}).status_code == 200
        assert httpx.get(f"{server.url}/healthz").status_code == 200
