"""The pairwise (EditReward) train loader under two real gloo processes: the trainer injects no sampler
(`use_distributed_sampler: false`), so the datamodule shards itself; the ranks' pairs are disjoint, of equal
length, and together every train pair once."""

from __future__ import annotations

import os
import socket

import torch.distributed as dist
import torch.multiprocessing as mp

from ie_eval.data.pairwise import PairwiseDataModule
from ie_eval.data.resumable import ResumableLoader


def datamodule(manifest: str) -> PairwiseDataModule:
    data = PairwiseDataModule(sources=[f"synth:{os.path.dirname(manifest)}"], batch_size=4, eval_batch_size=8,
                              split_ratios={"train": 0.6, "val": 0.2, "test": 0.2})
    data.collator = lambda: list  # no model attached here: the batches' contents are not under test
    data.setup("fit")
    return data


def pair_key(pair) -> str:
    return f"{pair.first.sample_id}|{pair.second.sample_id}"


def rank_pairs(rank: int, port: int, manifest: str, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        data = datamodule(manifest)
        loader = data.train_dataloader()
        pairs = data.splits["train"]
        out[rank] = {"resumable": isinstance(loader, ResumableLoader),
                     "pairs": [pair_key(pairs[i]) for i in loader.sampler]}
    finally:
        dist.destroy_process_group()


def test_two_ranks_train_on_disjoint_equal_shards_of_the_pairs(synth_manifest):
    whole = [pair_key(p) for p in datamodule(str(synth_manifest)).splits["train"]]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(rank_pairs, args=(port, str(synth_manifest), out), nprocs=2, join=True)
        ranks = dict(out)
    first, second = ranks[0]["pairs"], ranks[1]["pairs"]
    assert ranks[0]["resumable"] and ranks[1]["resumable"]
    assert len(first) == len(second) == -(-len(whole) // 2)
    padded = len(first) + len(second) - len(whole)  # an odd count repeats one pair (DistributedSampler's rule)
    assert len(set(first) & set(second)) <= padded
    assert set(first) | set(second) == set(whole)
