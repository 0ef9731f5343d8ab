"""GRPO prompt mix: the MOS:pure ratio per step, pool coverage, held-out prompts."""

from collections import Counter

import pytest

from ie_eval.rl.prompt_data import PromptDataModule, PromptMixSampler, RecordBatch, mix_counts, withhold_mos


def test_mix_counts_follow_ratio_and_fall_back_to_one_pool():
    assert mix_counts(10, 0.7, True, True) == (7, 3)
    assert mix_counts(4, 0.7, True, True) == (3, 1)
    assert mix_counts(4, 0.7, True, False) == (4, 0)
    assert mix_counts(4, 0.7, False, True) == (0, 4)


def test_sampler_batches_hold_the_ratio_and_cover_both_pools_each_epoch():
    labeled, pure = list(range(14)), list(range(100, 106))
    sampler = PromptMixSampler(labeled, pure, prompts_per_step=10, mos_ratio=0.7, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 2
    for batch in batches:
        assert sum(i < 100 for i in batch) == 7 and sum(i >= 100 for i in batch) == 3
    seen = Counter(i for batch in batches for i in batch)
    assert set(labeled) <= set(seen) and set(pure) <= set(seen)
    assert list(sampler) != batches  # the next epoch is reshuffled


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mos_ratio"):
        PromptMixSampler([0], [1], 2, 1.5)
    with pytest.raises(ValueError, match="both prompt pools are empty"):
        PromptMixSampler([], [], 2, 0.7)


def test_withheld_share_is_stable_and_close_to_requested(synth_manifest):
    data = PromptDataModule(str(synth_manifest))
    records = data._read(str(synth_manifest))
    first, second = withhold_mos(records, 0.3, "s"), withhold_mos(records, 0.3, "s")
    assert [r.mos for r in first] == [r.mos for r in second]
    share = sum(r.mos is None for r in first) / len(first)
    assert 0.15 < share < 0.45


def test_datamodule_splits_pairs_and_mixes_train_batches(synth_manifest):
    data = PromptDataModule(str(synth_manifest), prompts_per_step=10, mos_ratio=0.7, val_prompts=5)
    data.setup("fit")
    pair_ids = [r.pair_id for split in data.splits.values() for r in split]
    assert len(pair_ids) == len(set(pair_ids))  # one prompt per pair, whatever the critiques per pair
    assert all(r.critique is None for r in data.splits["train"])
    batch = next(iter(data.train_dataloader()))
    assert sum(r.has_mos for r in batch) == 7 and len(batch) == 10
    val = [r for b in data.val_dataloader() for r in b]
    assert len(val) == 5 and all(r.has_mos for r in val)
    train_sources = {r.source_id for r in data.splits["train"]}
    assert train_sources.isdisjoint({r.source_id for r in val})


def test_ranks_take_turns_on_one_stream_so_their_prompts_differ_and_keep_the_mix() -> None:
    labeled, pure = list(range(40)), list(range(100, 120))
    single = list(PromptMixSampler(labeled, pure, 4, 0.5, seed=3, num_replicas=1, rank=0))
    ranks = [list(PromptMixSampler(labeled, pure, 4, 0.5, seed=3, num_replicas=2, rank=r)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(single) // 2
    for step, (first, second) in enumerate(zip(*ranks, strict=True)):
        assert first == single[2 * step] and second == single[2 * step + 1]
        assert sum(i < 100 for i in first) == sum(i < 100 for i in second) == 2
    assert set(sum(ranks[0] + ranks[1], [])) >= set(labeled)  # the epoch still covers the larger pool


def test_a_ddp_trainer_that_would_inject_a_sampler_is_refused_by_name(synth_manifest) -> None:
    import lightning as L

    data = PromptDataModule(str(synth_manifest), prompts_per_step=2)
    data.setup("fit")
    data.trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match="use_distributed_sampler: false"):
        data.train_dataloader()


def test_ie_critic_r1_table_gives_labeled_prompts_with_one_overall_mos(tmp_path) -> None:
    import json

    from PIL import Image

    from ie_eval.data.records import overall_mos

    rows = []
    for i in range(40):
        for name in (f"src/{i}.png", f"edit/{i}.png"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / name)
        rows.append({"images": [f"src/{i}.png", f"edit/{i}.png"], "answer": 1 + (i % 5), "edit_inst": f"edit {i}"})
    table = tmp_path / "train.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    module = PromptDataModule(str(table), layout="ie_critic_r1", withheld_mos_share=0.25, prompts_per_step=4,
                              mos_ratio=0.5, split_ratios={"train": 0.8, "val": 0.2})
    module.setup()
    train = module.splits["train"]
    labeled = [r for r in train if overall_mos(r) is not None]
    assert labeled and all(r.mos is None for r in train)  # labeled by the single MOS alone
    withheld = [r for r in train if overall_mos(r) is None]
    assert withheld and all("mos_overall" not in r.meta for r in withheld)  # the pure pool really has no truth
    batch = next(iter(module.train_dataloader()))
    assert sum(overall_mos(r) is not None for r in batch) == 2  # the 1:1 mix holds


@pytest.mark.parametrize("precision", ["bf16-true", "16-true"])
def test_precision_plugins_pass_record_batches_through_untouched(synth_manifest, precision):
    from lightning.pytorch.plugins.precision import HalfPrecision

    data = PromptDataModule(str(synth_manifest), prompts_per_step=2, mos_ratio=0.5)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert isinstance(batch, RecordBatch) and len(batch) == 2
    plugin = HalfPrecision(precision)
    assert plugin.convert_input(batch) is batch
    with pytest.raises(ValueError, match="frozen dataclass"):  # what a plain list of records meets
        plugin.convert_input(list(batch))
