"""One "rank" of `ie-eval grpo --serve-rm`'s server start (run by test_node_server.py with LOCAL_RANK set).

    python node_rank.py CKPT RENDEZVOUS_DIR OUT_JSON RELEASE_FILE

Gets the node's reward server URL from `node_reward_server`, checks it answers, writes what it saw to
OUT_JSON, then holds the server (rank 0) until RELEASE_FILE exists, so every rank can use it.
"""

import json
import os
import sys
import time
from pathlib import Path

import httpx

from ie_eval.serve.node import node_layout, node_reward_server, rendezvous_path


def serve_rm_children() -> list[int]:
    """Pids of this process's children running `serve-rm` (read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"serve-rm" in cmdline:
            found.append(int(stat.parent.name))
    return found


def main(ckpt: str, rendezvous: str, out: str, release: str) -> None:
    with node_reward_server(ckpt, rendezvous_dir=rendezvous, timeout_s=120.0) as url:
        record = {
            "local_rank": node_layout().local_rank, "url": url, "serve_rm_children": serve_rm_children(),
            "healthz": httpx.get(f"{url}/healthz", timeout=10.0).status_code,
            "published": json.loads(rendezvous_path(rendezvous, node_layout()).read_text()),
        }
        Path(out).write_text(json.dumps(record))
        deadline = time.monotonic() + 120.0
        while not Path(release).exists() and time.monotonic() < deadline:
            time.sleep(0.1)


if __name__ == "__main__":
    main(*sys.argv[1:5])
