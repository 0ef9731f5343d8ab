"""What the step benchmarks share: time a step and take its peak memory above what existed before it, and
run each compared path in its own process (so one path's peak is not another's).

Peak memory: on CUDA the allocator's peak; on CPU the kernel's resident high-water mark (VmHWM), reset
once the model and inputs exist, minus the resident size then.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import torch


def resident_bytes() -> int:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_resident() -> None:
    """Start the kernel's high-water mark (VmHWM) afresh, so making the inputs does not count."""
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")


def peak_resident_bytes() -> int:
    with open("/proc/self/status") as file:
        line = next(line for line in file if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def time_step(step: Callable[[], None], repeats: int, device: str) -> dict:
    """{"seconds": median of `repeats` calls after one warm-up, "peak_bytes_above_inputs"}."""
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        reset_peak_resident()
        base = resident_bytes()
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if cuda else peak_resident_bytes()
    return {"seconds": statistics.median(times[1:]), "peak_bytes_above_inputs": peak - base}


def optimizer_step(model: torch.nn.Module, loss: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """One training step as the benchmarks time it: AdamW on the trainable parameters, zero, backward, step."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss().backward()
        optimizer.step()

    return step


def run_workers(script: str, arguments: Sequence[str], paths: Sequence[str]) -> dict[str, dict]:
    """`script --worker --path P *arguments` in a fresh process per path; each prints its result as JSON last."""
    measured = {}
    for path in paths:
        done = subprocess.run([sys.executable, script, "--worker", "--path", path, *arguments], capture_output=True,
                              text=True, check=True, env=dict(os.environ))
        measured[path] = json.loads(done.stdout.strip().splitlines()[-1])
    return measured
