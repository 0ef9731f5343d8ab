"""Mid-epoch resume on one process, real Trainer: the resumed run continues the epoch where the checkpoint
was written (no batch twice, none left out), with the same dropout masks and AdaLoRA allocator state, so
it ends on the uninterrupted run's weights."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from test_reward_module import InterruptAt, SimulatedCrash, tiny_data, tiny_module, trainer

from ie_eval.data.sampler import StratifiedEditSampler
from ie_eval.lit.resume import ResumeState
from ie_eval.rl.prompt_data import PromptMixSampler


class RecordBatches(L.Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, list[str]]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append((trainer.global_step, list(batch["sample_ids"])))


def adalora_module():
    return tiny_module(
        backbone="tiny-qwen3.5", head={"hidden_size": 32, "dropout": 0.3},  # dropout: resume must restore the RNG
        adapter={"kind": "adalora", "adalora_init_r": 4, "adalora_target_r": 2, "adalora_tinit": 1,
                 "adalora_tfinal": 2, "adalora_delta_t": 1},
    )


def test_a_mid_epoch_resume_sees_each_sample_once_and_ends_on_the_uninterrupted_weights(synth_manifest, tmp_path):
    steps = dict(max_epochs=2, limit_train_batches=4)
    L.seed_everything(0)
    straight, straight_batches = adalora_module(), RecordBatches()
    trainer(tmp_path / "a", [straight_batches, ResumeState()], **steps).fit(straight, datamodule=tiny_data(synth_manifest))

    L.seed_everything(0)
    every_two = ModelCheckpoint(dirpath=tmp_path / "b", every_n_train_steps=2, save_last=True, save_top_k=-1)
    before = RecordBatches()
    first = trainer(tmp_path / "b", [before, ResumeState(), every_two, InterruptAt(step=3)], **steps)
    with pytest.raises(SimulatedCrash):
        first.fit(adalora_module(), datamodule=tiny_data(synth_manifest))

    L.seed_everything(1)  # a different seed: everything the continuation draws must come from the checkpoint
    resumed, after = adalora_module(), RecordBatches()
    second = trainer(tmp_path / "b", [after, ResumeState()], **steps)
    second.fit(resumed, datamodule=tiny_data(synth_manifest), ckpt_path=tmp_path / "b" / "last.ckpt")

    # The checkpoint is step 2's (mid-epoch 0): the resumed run trains epoch 0's batches 2 and 3, then epoch 1.
    trained = [batch for step, batch in before.seen if step < 2] + [batch for _, batch in after.seen]
    assert [step for step, _ in after.seen] == [2, 3, 4, 5, 6, 7]
    assert trained == [batch for _, batch in straight_batches.seen]
    epoch0 = sum(trained[:4], [])
    assert len(set(epoch0)) == len(epoch0)  # no sample twice in the resumed epoch
    saved = torch.load(tmp_path / "b" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["adalora_allocator"]["exp_avg_ipt"]  # step 2's sensitivity averages, which steps 3+ prune by
    assert len(saved["rng_states"]) == 1
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_samplers_skip_the_consumed_part_of_an_epoch():
    keys = [(f"s{i % 5}", f"p{i % 10}") for i in range(40)]
    sampler = StratifiedEditSampler(keys, seed=3, num_replicas=2, rank=1)
    sampler.set_epoch(2)
    whole = list(sampler)
    sampler.skip_next(5)
    assert list(sampler) == whole[5:] and list(sampler) == whole  # skipping applies to the next epoch pass only
    mix = PromptMixSampler(range(10), range(10, 16), prompts_per_step=3, mos_ratio=0.7, seed=1, num_replicas=2, rank=0)
    mix.set_epoch(1)
    batches = list(mix)
    mix.set_epoch(1)
    mix.skip_next(2)
    assert list(mix) == batches[2:]
