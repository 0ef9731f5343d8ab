"""One reward server per node: local rank 0 starts `ie-eval serve-rm`, the node's other ranks use its URL.

A multi-process launch runs one `ie-eval grpo` per rank. torchrun and `srun` start the ranks side by side
(siblings): local rank 0 starts the server and writes its URL to a rendezvous file named for the node and
the launch; the other local ranks poll that file and check the server answers before using it. Lightning's
own launcher (`--trainer.devices N` without torchrun) re-runs the command line from rank 0, whose
environment the children inherit: rank 0 puts the URL in `REWARD_URL_ENV` first, so they find it there.

The rank layout is read the way Lightning's cluster environments read it
(`lightning.fabric.plugins.environments`): LOCAL_RANK, then SLURM_LOCALID; NODE_RANK, GROUP_RANK, then
SLURM_NODEID. Left out: one server for several nodes (each node scores its own ranks' rollouts over
loopback, so no reward traffic crosses the network) and restarting a server that dies mid-run (the GRPO
loop's reward outage checkpoint covers that).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from ie_eval.serve.runner import bind_free_port, wait_healthy

log = logging.getLogger(__name__)

# Set in local rank 0's environment once its server answers; children it launches (Lightning's
# subprocess launcher copies os.environ) read it instead of starting a server.
REWARD_URL_ENV = "IE_EVAL_REWARD_URL"


@dataclass(frozen=True)
class NodeLayout:
    """Where this process sits: its rank on the node, the node's rank, and a key naming this launch."""

    local_rank: int
    node_rank: int
    launch_id: str


def node_layout(env: Mapping[str, str] | None = None) -> NodeLayout:
    """This process's layout from the launcher's variables (torchrun, SLURM, Lightning's launcher, none)."""
    env = os.environ if env is None else env
    local_rank = _first_int(env, "LOCAL_RANK", "SLURM_LOCALID")
    node_rank = _first_int(env, "NODE_RANK", "GROUP_RANK", "SLURM_NODEID")
    return NodeLayout(local_rank=local_rank, node_rank=node_rank, launch_id=launch_id(env))


def launch_id(env: Mapping[str, str]) -> str:
    """A key shared by the ranks of one launch on one node and not by the next launch.

    SLURM: job and step ids. torchrun: its run id (the literal "none" unless --rdzv-id or --standalone,
    so then its agent's pid, every worker's parent) and the restart count, so a restarted group does not
    read the failed group's file. Otherwise the parent's pid (the ranks' common launcher).
    """
    if env.get("SLURM_JOB_ID"):
        return f"slurm{env['SLURM_JOB_ID']}.{env.get('SLURM_STEP_ID', '0')}"
    if "TORCHELASTIC_RUN_ID" in env:
        run = env["TORCHELASTIC_RUN_ID"]
        run = f"agent{os.getppid()}" if run in ("", "none") else run
        return f"torchrun-{run}.{env.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    return f"ppid{os.getppid()}"


def _first_int(env: Mapping[str, str], *names: str) -> int:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"environment variable {name}={value!r} is not an integer rank") from None
    return 0


def visible_gpu_count() -> int:
    """CUDA devices this process sees (after CUDA_VISIBLE_DEVICES); 0 without CUDA. Does not initialise CUDA."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def serve_device(requested: str, gpu_count: int) -> str:
    """The reward server's torch device: `requested` ("auto", "cpu", "cuda", "cuda:N" or "N") checked against
    the `gpu_count` visible GPUs.

    "auto" is the node's last GPU when there is one (the policy ranks take cuda:0.. in order, so with
    `--trainer.devices` one short of the node's GPUs the server has a GPU to itself, else it shares the
    last rank's), the CPU otherwise. "cuda" is the last GPU too, but an error without one.
    """
    value = requested.strip().lower()
    if value == "cpu":
        return "cpu"
    if value in ("auto", "cuda"):
        if gpu_count > 0:
            return f"cuda:{gpu_count - 1}"
        if value == "auto":
            return "cpu"
        raise ValueError("reward server device 'cuda': no CUDA GPU is visible to this process")
    index_text = value.removeprefix("cuda:")
    if not index_text.isdigit():
        raise ValueError(f"reward server device {requested!r}: expected auto, cpu, cuda, cuda:N or N")
    index = int(index_text)
    if index >= gpu_count:
        raise ValueError(f"reward server device {requested!r}: only {gpu_count} GPU(s) visible (cuda:0..)"
                         if gpu_count else f"reward server device {requested!r}: no CUDA GPU is visible")
    return f"cuda:{index}"


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now on `host` (the kernel picks it; the server binds it moments later)."""
    with bind_free_port(host) as sock:
        return int(sock.getsockname()[1])


class RewardServerProcess:
    """`ie-eval serve-rm --ckpt ckpt` as a subprocess on a free port of `host`; `url` answers once `start` returns.

    device / max_batch_size / config: passed to serve-rm when set (None keeps ServeConfig's defaults).
    """

    def __init__(self, ckpt: str, host: str = "127.0.0.1", device: str | None = None,
                 max_batch_size: int | None = None, config: str | None = None) -> None:
        self.url = f"http://{host}:{free_port(host)}"
        port = self.url.rsplit(":", 1)[1]
        self.command = [sys.executable, "-m", "ie_eval.cli", "serve-rm", "--ckpt", ckpt, "--host", host,
                        "--port", port, "--log-level", "warning"]
        for flag, value in (("--device", device), ("--max-batch-size", max_batch_size), ("--config", config)):
            if value is not None:
                self.command += [flag, str(value)]
        self.process: subprocess.Popen | None = None

    def start(self, startup_s: float = 120.0) -> RewardServerProcess:
        """Launch and wait for /healthz; a server that exits or stays silent is stopped and raises."""
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        self.process = subprocess.Popen(self.command, env=env)
        try:
            wait_healthy(self.url, self.process, startup_s)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


@contextmanager
def served_reward_model(ckpt: str, host: str = "127.0.0.1", startup_s: float = 120.0, device: str | None = None,
                        max_batch_size: int | None = None, config: str | None = None) -> Iterator[str]:
    """A running `ie-eval serve-rm --ckpt ckpt` subprocess; yields its base URL, terminates it on exit."""
    server = RewardServerProcess(ckpt, host, device, max_batch_size, config).start(startup_s)
    try:
        yield server.url
    finally:
        server.stop()


def rendezvous_path(directory: str | Path | None, layout: NodeLayout) -> Path:
    """The file local rank 0 of `layout`'s node writes its server's URL to (default folder: the node's temp dir)."""
    base = Path(directory) if directory is not None else Path(tempfile.gettempdir()) / "ie-eval-reward-servers"
    return base / f"node{layout.node_rank}-{layout.launch_id}.json"


def write_rendezvous(path: Path, record: dict) -> None:
    """Write `record` so that a reader sees either nothing or all of it (rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(record), encoding="utf-8")
    os.replace(partial, path)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for_node_server(path: Path, timeout_s: float, layout: NodeLayout, poll_s: float = 0.2) -> str:
    """The URL local rank 0 published at `path`, once its server answers /healthz; raise naming what is missing.

    A file left by an earlier launch is ignored: its writer's pid must be alive (same node, so pids compare).
    """
    who = f"local rank {layout.local_rank} of node {layout.node_rank}"
    deadline = time.monotonic() + timeout_s
    seen: dict | None = None
    while time.monotonic() < deadline:
        record = read_rendezvous(path)
        if record is not None and pid_alive(int(record.get("owner_pid", -1))):
            seen = record
            if "error" in record:
                raise RuntimeError(f"{who}: local rank 0 could not start the reward server: {record['error']}")
            try:
                if httpx.get(f"{record['url']}/healthz", timeout=2.0).status_code == 200:
                    return str(record["url"])
            except httpx.TransportError:
                pass
        time.sleep(poll_s)
    state = (f"it published {seen['url']}, which did not answer /healthz" if seen else
             f"nothing was published at {path}")
    raise TimeoutError(
        f"{who}: no reward server from local rank 0 within {timeout_s:g} s ({state}). Local rank 0's output "
        "says why it did not start; raise --serve-rm-timeout if loading the model is slow, or give every rank "
        "the server's address with --model.init_args.reward_source.url"
    )


def read_rendezvous(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@contextmanager
def node_reward_server(ckpt: str, host: str = "127.0.0.1", device: str = "auto", max_batch_size: int | None = None,
                       config: str | None = None, rendezvous_dir: str | Path | None = None,
                       timeout_s: float = 600.0) -> Iterator[str]:
    """The node's reward server URL: started here on local rank 0, awaited on the other local ranks.

    Rank 0 resolves `device` with `serve_device` on its visible GPUs, starts serve-rm, publishes the URL (in
    its environment and the rendezvous file) and stops the server on exit. A URL already in REWARD_URL_ENV
    (this process was launched by such a rank 0) is used as it is.
    """
    if os.environ.get(REWARD_URL_ENV):
        yield os.environ[REWARD_URL_ENV]
        return
    layout = node_layout()
    path = rendezvous_path(rendezvous_dir, layout)
    if layout.local_rank != 0:
        yield wait_for_node_server(path, timeout_s, layout)
        return
    path.unlink(missing_ok=True)
    try:
        chosen = serve_device(device, visible_gpu_count())
        server = RewardServerProcess(ckpt, host, chosen, max_batch_size, config).start(timeout_s)
    except BaseException as err:
        write_rendezvous(path, {"owner_pid": os.getpid(), "error": f"{type(err).__name__}: {err}"})
        raise
    log.info("reward server for node %d on %s (%s)", layout.node_rank, server.url, chosen)
    write_rendezvous(path, {"owner_pid": os.getpid(), "url": server.url, "server_pid": server.process.pid,
                            "device": chosen})
    os.environ[REWARD_URL_ENV] = server.url
    try:
        yield server.url
    finally:
        os.environ.pop(REWARD_URL_ENV, None)
        path.unlink(missing_ok=True)
        server.stop()
