"""One reward server per node (`ie_eval/serve/node.py`): real rank processes, a real serve-rm on 127.0.0.1."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ie_eval.serve.node import (
    NodeLayout,
    node_layout,
    node_reward_server,
    rendezvous_path,
    serve_device,
    wait_for_node_server,
    write_rendezvous,
)

RANK_SCRIPT = Path(__file__).with_name("node_rank.py")
LAUNCHER_VARS = ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_JOB_ID", "SLURM_LOCALID", "SLURM_NODEID",
                 "TORCHELASTIC_RUN_ID", "IE_EVAL_REWARD_URL")


def rank_env(local_rank: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    return env | {"LOCAL_RANK": str(local_rank), "NODE_RANK": "0", "OMP_NUM_THREADS": "1"}


def test_two_local_ranks_start_one_server_and_share_its_url(tiny_rm_dir, tmp_path):
    release = tmp_path / "release"
    ranks = []
    for local_rank in (1, 0):  # rank 1 first: it must wait for rank 0's server, not start its own
        out = tmp_path / f"rank{local_rank}.json"
        command = [sys.executable, str(RANK_SCRIPT), str(tiny_rm_dir), str(tmp_path / "rdzv"), str(out), str(release)]
        ranks.append((out, subprocess.Popen(command, env=rank_env(local_rank), stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True)))
    try:
        for out, process in ranks:
            deadline = time.monotonic() + 180.0
            while not out.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        release.touch()
        for _, process in ranks:
            output, _ = process.communicate(timeout=60)
            assert process.returncode == 0, output[-3000:]
    finally:
        release.touch()
        for _, process in ranks:
            if process.poll() is None:
                process.kill()
    rank1, rank0 = (json.loads(out.read_text()) for out, _ in ranks)
    assert rank0["url"] == rank1["url"] and rank0["url"].startswith("http://127.0.0.1:")
    assert rank0["healthz"] == rank1["healthz"] == 200
    assert len(rank0["serve_rm_children"]) == 1 and rank1["serve_rm_children"] == []
    assert rank0["published"]["server_pid"] == rank0["serve_rm_children"][0]
    assert rank0["published"]["device"] == "cpu"  # auto on a machine without CUDA
    assert not list((tmp_path / "rdzv").glob("*.json"))  # rank 0 removed its rendezvous file on exit


def test_a_rank_without_its_servers_rank_0_times_out_naming_the_file(tmp_path):
    layout = NodeLayout(local_rank=1, node_rank=0, launch_id="test")
    path = rendezvous_path(tmp_path, layout)
    with pytest.raises(TimeoutError, match=r"local rank 1 of node 0: no reward server .* \(nothing was published at"):
        wait_for_node_server(path, timeout_s=0.5, layout=layout)


def test_a_file_left_by_an_earlier_launch_is_ignored(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    layout = NodeLayout(local_rank=1, node_rank=0, launch_id="test")
    path = rendezvous_path(tmp_path, layout)
    write_rendezvous(path, {"owner_pid": int(finished.stdout), "url": "http://127.0.0.1:9"})
    with pytest.raises(TimeoutError, match="nothing was published"):
        wait_for_node_server(path, timeout_s=0.5, layout=layout)


def test_rank_0_that_cannot_start_the_server_tells_the_other_ranks_why(tmp_path, monkeypatch):
    for name in LAUNCHER_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(ValueError, match="no CUDA GPU"), node_reward_server("unused", device="cuda:0",
                                                                          rendezvous_dir=tmp_path):
        pass
    other = NodeLayout(local_rank=1, node_rank=0, launch_id=node_layout().launch_id)
    with pytest.raises(RuntimeError, match="local rank 0 could not start the reward server: ValueError"):
        wait_for_node_server(rendezvous_path(tmp_path, other), timeout_s=5.0, layout=other)


@pytest.mark.parametrize(("requested", "gpus", "device"), [
    ("auto", 0, "cpu"), ("auto", 1, "cuda:0"), ("auto", 8, "cuda:7"), ("cuda", 4, "cuda:3"), ("cpu", 4, "cpu"),
    ("cuda:1", 4, "cuda:1"), ("2", 4, "cuda:2"),
])
def test_server_device_is_the_last_visible_gpu_unless_named(requested, gpus, device):
    assert serve_device(requested, gpus) == device


@pytest.mark.parametrize(("requested", "gpus", "message"), [
    ("cuda", 0, "no CUDA GPU"), ("cuda:4", 4, "only 4 GPU"), ("cuda:0", 0, "no CUDA GPU"), ("tpu", 4, "expected auto"),
])
def test_a_device_that_is_not_there_is_refused(requested, gpus, message):
    with pytest.raises(ValueError, match=message):
        serve_device(requested, gpus)


def test_layout_reads_torchrun_slurm_and_lightning_variables():
    torchrun = node_layout({"LOCAL_RANK": "3", "GROUP_RANK": "1", "TORCHELASTIC_RUN_ID": "job7",
                            "TORCHELASTIC_RESTART_COUNT": "2"})
    assert (torchrun.local_rank, torchrun.node_rank, torchrun.launch_id) == (3, 1, "torchrun-job7.2")
    slurm = node_layout({"SLURM_LOCALID": "2", "SLURM_NODEID": "4", "SLURM_JOB_ID": "991", "SLURM_STEP_ID": "0"})
    assert (slurm.local_rank, slurm.node_rank, slurm.launch_id) == (2, 4, "slurm991.0")
    lightning = node_layout({"LOCAL_RANK": "1", "NODE_RANK": "2"})
    assert (lightning.local_rank, lightning.node_rank) == (1, 2)
    assert lightning.launch_id == f"ppid{os.getppid()}"
    assert node_layout({}) == NodeLayout(0, 0, f"ppid{os.getppid()}")
