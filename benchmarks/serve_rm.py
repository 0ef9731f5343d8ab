"""Reward-server throughput: micro-batching on (max batch 32) vs off (max batch 1), one run.

Builds the tiny RewardModel (seeded) in a temp dir, serves it with the real `ie-eval serve-rm`
in a subprocess on 127.0.0.1 (its own process, so the load generator does not share its GIL),
and drives it with 1, 8 and 32 concurrent clients, each sending one-item requests (two 64x64
PNGs and a short critique) back to back. Prints a table; writes benchmarks/results/serve_rm.json.

    .venv/bin/python benchmarks/serve_rm.py [--requests-per-client 25] [--rounds 3] [--out FILE]

The modes alternate within each client count (`--rounds` times, median kept) so both see
the same background load on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx  # counters only; load goes through Connection

from ie_eval.serve.runner import wait_healthy

RESULTS = Path(__file__).resolve().parent / "results" / "serve_rm.json"
MODES = {"batched": {"max_batch_size": 32, "max_wait_ms": 5.0}, "one-at-a-time": {"max_batch_size": 1, "max_wait_ms": 0.0}}
CONCURRENCY = (1, 8, 32)
# Shared by both modes. One torch thread: on 2 shared cores OpenMP workers spin-wait against the event loop.
SERVER_CONFIG = {"max_pixels": 64 * 64, "max_queue": 1024, "torch_threads": 1}
IMAGE_SIZE = 64
PAYLOADS = 64  # distinct request bodies, cycled
MIN_REQUESTS = 100  # timed requests per (mode, clients, round) at least
WARMUP_PER_CLIENT = 3


@dataclass
class Row:
    mode: str
    max_batch_size: int
    clients: int
    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    mean_batch: float
    errors: int


def build_tiny_checkpoint(directory: Path, seed: int) -> Path:
    """The tiny Qwen3-VL RewardModel the serve tests use, deterministic for `seed`."""
    import torch

    from ie_eval.models.heads import HeadConfig
    from ie_eval.models.reward_model import RewardModel

    torch.manual_seed(seed)
    model = RewardModel.build("tiny-qwen3-vl", head=HeadConfig(hidden_size=16))
    return model.save_pretrained(directory / "rm")


def png_base64(seed: int, color: tuple[int, int, int]) -> str:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), "white")
    offset = seed % 16
    ImageDraw.Draw(image).rectangle((8 + offset, 8, 40 + offset, 40), fill=color)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def request_bodies(count: int) -> list[bytes]:
    """`count` distinct one-item /v1/score bodies, JSON-encoded once up front."""
    bodies = []
    for i in range(count):
        item = {
            "source_image": {"base64": png_base64(i, (200, 30, 30))},
            "edited_image": {"base64": png_base64(i + 7, (30, 30, 200))},
            "instruction": "make the red square blue",
            "critique": "[Visual Quality]\nClean edges." + " The square is blue." * (1 + i % 4)
            + "\n[Final Assessment]\nVisual Quality: 4",
        }
        bodies.append(json.dumps({"items": [item]}).encode())
    return bodies


def start_server(ckpt: Path, mode: dict, workdir: Path, port: int) -> subprocess.Popen:
    config = workdir / f"serve-{mode['max_batch_size']}.json"
    config.write_text(json.dumps({**mode, **SERVER_CONFIG}))
    command = [
        sys.executable, "-m", "ie_eval.commands.serve_rm", "--ckpt", str(ckpt), "--config", str(config),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]
    return subprocess.Popen(command, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})


class Connection:
    """A bare keep-alive HTTP/1.1 connection: a few microseconds of client CPU per request.

    httpx costs 2-6 ms of CPU per request here, which on 2 cores would be load the server
    competes with; this sends pre-built requests and reads Content-Length bodies, nothing more.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def post(self, raw_request: bytes) -> tuple[int, bytes]:
        self.writer.write(raw_request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def raw_post(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


async def drive(port: int, requests: list[bytes], clients: int, per_client: int) -> tuple[float, list[float], int]:
    """`clients` concurrent connections sending `per_client` requests each, back to back.

    Returns (wall seconds, per-request latencies in seconds, failed requests); a few warm-up
    requests per client are sent first and not counted.
    """
    connections = [await Connection.open("127.0.0.1", port) for _ in range(clients)]
    latencies: list[float] = []
    errors = 0

    async def one_client(index: int, count: int) -> None:
        nonlocal errors
        for k in range(count):
            start = time.perf_counter()
            status, body = await connections[index].post(requests[(index * per_client + k) % len(requests)])
            latencies.append(time.perf_counter() - start)
            if status != 200 or len(json.loads(body)["results"]) != 1:
                errors += 1

    try:
        await asyncio.gather(*(one_client(i, WARMUP_PER_CLIENT) for i in range(clients)))
        latencies.clear()
        errors = 0
        start = time.perf_counter()
        await asyncio.gather(*(one_client(i, per_client) for i in range(clients)))
        wall = time.perf_counter() - start
    finally:
        for connection in connections:
            connection.close()
    return wall, latencies, errors


def counters(port: int) -> dict[str, int]:
    """The server's batches / items_scored counters (GET /healthz); warm-up requests included."""
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10.0).json()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(servers: dict[str, int], clients: int, per_client: int, rounds: int) -> list[Row]:
    """Alternate the modes `rounds` times at one client count; keep each mode's median round.

    Interleaving puts both modes under the same background load on a shared machine.
    """
    requests = [raw_post("/v1/score", body) for body in request_bodies(PAYLOADS)]
    runs: dict[str, list[Row]] = {name: [] for name in servers}
    for _ in range(rounds):
        for name, port in servers.items():
            before = counters(port)
            wall, latencies, errors = asyncio.run(drive(port, requests, clients, per_client))
            after = counters(port)
            batches = max(1, after["batches"] - before["batches"])
            runs[name].append(Row(
                mode=name, max_batch_size=MODES[name]["max_batch_size"], clients=clients, requests=len(latencies),
                seconds=round(wall, 3), requests_per_s=round(len(latencies) / wall, 1),
                p50_ms=round(1000 * statistics.median(latencies), 1),
                p99_ms=round(1000 * percentile(latencies, 0.99), 1),
                mean_batch=round((after["items_scored"] - before["items_scored"]) / batches, 1), errors=errors,
            ))
    rows = []
    for name in servers:
        ordered = sorted(runs[name], key=lambda row: row.requests_per_s)
        rows.append(ordered[len(ordered) // 2])
        print(format_row(rows[-1]), flush=True)
    return rows


def free_port() -> int:
    from ie_eval.serve.runner import bind_free_port

    sock = bind_free_port()
    port = sock.getsockname()[1]
    sock.close()
    return port


HEADER = (
    f"{'mode':<14} {'batch':>5} {'clients':>7} {'reqs':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
    f"{'mean batch':>10} {'errors':>6}"
)


def format_row(row: Row) -> str:
    return (
        f"{row.mode:<14} {row.max_batch_size:>5} {row.clients:>7} {row.requests:>5} {row.requests_per_s:>8.1f} "
        f"{row.p50_ms:>8.1f} {row.p99_ms:>8.1f} {row.mean_batch:>10.1f} {row.errors:>6}"
    )


def speedups(rows: list[Row]) -> dict[str, float]:
    """Batched / one-at-a-time requests/s per client count."""
    by_key = {(r.mode, r.clients): r.requests_per_s for r in rows}
    return {str(c): round(by_key[("batched", c)] / by_key[("one-at-a-time", c)], 2) for c in CONCURRENCY}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests-per-client", type=int, default=25, help="timed requests per client")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per client count (median kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ckpt = build_tiny_checkpoint(workdir, args.seed)
        servers = {name: free_port() for name in MODES}
        processes = [start_server(ckpt, MODES[name], workdir, port) for name, port in servers.items()]
        try:
            for process, port in zip(processes, servers.values(), strict=True):
                wait_healthy(f"http://127.0.0.1:{port}", process)
            print(HEADER, flush=True)
            rows = []
            for clients in CONCURRENCY:
                per_client = max(args.requests_per_client, -(-MIN_REQUESTS // clients))
                rows += measure(servers, clients, per_client, args.rounds)
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
    ratio = speedups(rows)
    print("batched / one-at-a-time requests/s by clients:", ratio)
    report = {
        "benchmark": "serve_rm", "model": f"tiny-qwen3-vl (seed {args.seed})", "image_size": IMAGE_SIZE,
        "items_per_request": 1, "modes": MODES, "server_config": SERVER_CONFIG, "rounds": args.rounds,
        "speedup_by_clients": ratio, "rows": [asdict(r) for r in rows],
        "machine": {
            "cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
