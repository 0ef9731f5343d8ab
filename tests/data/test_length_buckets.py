"""Length-bucketed training batches: the same samples per epoch, batches of similar length, less padding."""

import numpy as np
import pytest

from ie_eval.data.length_buckets import bucket_by_length
from ie_eval.data.sampler import StratifiedEditSampler


def padded_tokens(order, lengths, batch_size):
    """What a padded batch costs: its longest sample's length times its size, summed over the batches."""
    batches = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
    return sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)


def test_bucketing_is_a_permutation_of_full_sorted_batches_with_the_partial_one_last():
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 500, size=103).tolist()
    indices = rng.permutation(103).tolist()
    order = bucket_by_length(indices, lengths, batch_size=4, window_batches=5, rng=np.random.default_rng(1))
    assert sorted(order) == sorted(indices)
    assert order[-3:] == sorted(indices[100:], key=lambda i: lengths[i])  # 103 = 25 x 4 + 3: the tail stays last
    windows = [set(indices[k : k + 20]) for k in range(0, 103, 20)]
    for k in range(0, 100, 4):
        batch = order[k : k + 4]
        assert [lengths[i] for i in batch] == sorted(lengths[i] for i in batch)
        assert any(set(batch) <= w for w in windows)  # a batch never mixes two windows
    assert padded_tokens(order, lengths, 4) < 0.8 * padded_tokens(indices, lengths, 4)
    again = bucket_by_length(indices, lengths, batch_size=4, window_batches=5, rng=np.random.default_rng(1))
    assert again == order


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="batch_size"):
        bucket_by_length([0], [1], batch_size=0, window_batches=1, rng=np.random.default_rng(0))


def test_the_sampler_keeps_its_selection_and_pads_less():
    keys = [(f"s{i % 50}", f"p{i % 200}") for i in range(1000)]
    lengths = [50 + (i * 37) % 400 for i in range(1000)]
    plain = StratifiedEditSampler(keys, max_pairs_per_source=2, max_critiques_per_pair=3, seed=3)
    bucketed = StratifiedEditSampler(keys, max_pairs_per_source=2, max_critiques_per_pair=3, seed=3, lengths=lengths,
                                     bucket_batch_size=8, bucket_window=8)
    for epoch in range(3):
        plain.set_epoch(epoch)
        bucketed.set_epoch(epoch)
        assert sorted(bucketed) == sorted(plain)  # the caps' selection is untouched
        assert padded_tokens(list(bucketed), lengths, 8) < 0.8 * padded_tokens(list(plain), lengths, 8)
    with pytest.raises(ValueError, match="lengths"):
        StratifiedEditSampler(keys, lengths=lengths[:-1], bucket_batch_size=8)


def test_ranks_of_one_step_get_similar_lengths():
    keys = [(f"s{i}", f"p{i}") for i in range(64)]
    lengths = list(range(64))
    shards = [StratifiedEditSampler(keys, seed=1, num_replicas=2, rank=r, lengths=lengths, bucket_batch_size=8,
                                    bucket_window=8) for r in range(2)]
    per_rank = [list(s) for s in shards]
    assert sorted(per_rank[0] + per_rank[1]) == list(range(64))
    for k in range(0, 32, 4):  # one step: 4 samples on each rank, drawn from one global batch of 8
        step = per_rank[0][k : k + 4] + per_rank[1][k : k + 4]
        assert max(step) - min(step) == 7


def test_the_data_module_buckets_training_batches_only(synth_manifest):
    from ie_eval.data.datamodule import EditDataModule
    from ie_eval.models.reward_model import RewardModel

    processor = RewardModel.build("tiny-qwen3-vl").processor
    padded = {}
    for window in (None, 4):
        data = EditDataModule(str(synth_manifest), batch_size=4, max_pixels=4096, min_pixels=1024,
                              length_bucket_batches=window)
        data.processor = processor
        data.setup("fit")
        loader = data.train_dataloader()
        batches = list(loader)
        padded[window] = sum(b["attention_mask"].numel() for b in batches)
        assert sum(b["attention_mask"].shape[0] for b in batches) == len(loader.sampler)
        assert data.val_dataloader().sampler.lengths is None  # evaluation order is the dataset's
    assert padded[4] < padded[None]
