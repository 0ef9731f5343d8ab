"""Run the reward server's uvicorn in a background thread on a free loopback port.

For tests, benchmarks and single-node runs that want the HTTP path without a second process:
`with BackgroundServer(app) as server: RewardClient(server.url)...`.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from typing import Any

import httpx


def bind_free_port(host: str = "127.0.0.1") -> socket.socket:
    """A listening-ready socket bound to a free port on `host` (the kernel picks the port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float = 120.0) -> None:
    """Block until a reward server subprocess answers `GET /healthz` with 200; raise if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"reward server {url} exited with code {process.returncode} during startup")
        try:
            if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"reward server {url} did not answer /healthz within {timeout_s:.0f} s")


class BackgroundServer:
    """uvicorn.Server on its own thread and event loop; `url` is valid once `start` returns."""

    def __init__(self, app: Any, host: str = "127.0.0.1", log_level: str = "warning", **uvicorn_kwargs: Any) -> None:
        import uvicorn

        self.sock = bind_free_port(host)
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on", **uvicorn_kwargs)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name=f"uvicorn-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _serve(self) -> None:
        self.server.run(sockets=[self.sock])

    def start(self, timeout_s: float = 30.0) -> BackgroundServer:
        """Start serving and wait until uvicorn reports started (or raise naming the timeout)."""
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"reward server on {self.url} exited during startup")
            if time.monotonic() > deadline:
                raise TimeoutError(f"reward server on {self.url} not started within {timeout_s}s")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask uvicorn to exit (lifespan shutdown stops the batcher) and join the thread."""
        self.server.should_exit = True
        self.thread.join(timeout_s)
        self.sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
