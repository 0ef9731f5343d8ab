"""Critic SFT with a real Lightning Trainer: the phased schedule, CE only on critiques, export, CLI."""

import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch

from ie_eval.cli import main as cli_main
from ie_eval.commands.fit import build_cli
from ie_eval.data.phased import PhasedDataModule
from ie_eval.lit.callbacks import ExportPretrained
from ie_eval.lit.sft_module import SFTModule, total_optimizer_steps
from ie_eval.models.critic import CriticModel

REPO = Path(__file__).resolve().parents[2]
PHASES = [
    {"name": "warmup", "epochs": [1, 1], "pools": ["score_cot"]},
    {"name": "mixed", "epochs": [2, 2], "pools": ["score_cot", "score_only"]},
    {"name": "refresh", "epochs": [3, 3], "pools": ["score_cot"]},
]
BATCHES_PER_EPOCH = 3


def tiny_module():
    return SFTModule(
        backbone="tiny-qwen3-vl", adapter={"kind": "full"}, head={"hidden_size": 32, "dropout": 0.0},
        optim={"lr": 1e-3, "head_lr": 1e-3}, generation={"max_new_tokens": 16, "max_batches": 1},
    )


def tiny_data(manifest, **overrides):
    kwargs = dict(
        score_only_manifest=str(Path(manifest).parent / "pairs.jsonl"), phases=PHASES, batch_size=8,
        max_pixels=64 * 64, min_pixels=32 * 32, max_length=1024,
    )
    return PhasedDataModule(str(manifest), **(kwargs | overrides))


def trainer(root, callbacks=(), **overrides):
    kwargs = dict(
        accelerator="cpu", max_epochs=3, logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, default_root_dir=root, num_sanity_val_steps=0, use_distributed_sampler=False,
        reload_dataloaders_every_n_epochs=1, limit_train_batches=BATCHES_PER_EPOCH, limit_val_batches=1,
        deterministic=True,
    )
    return L.Trainer(callbacks=list(callbacks), **(kwargs | overrides))


class RecordBatches(L.Callback):
    """Per training batch: epoch, sample ids, which rows have a critique, which rows the CE saw."""

    def __init__(self):
        self.batches = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches.append({
            "epoch": trainer.current_epoch, "phase": trainer.datamodule.current_phase.name,
            "sample_ids": list(batch["sample_ids"]), "has_critique": batch["has_critique"].tolist(),
            "ce_rows": outputs["ce_rows"].tolist(),
        })


@pytest.fixture(scope="module")
def fitted(synth_manifest, tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    L.seed_everything(0)
    module, data, recorder = tiny_module(), tiny_data(synth_manifest), RecordBatches()
    run = trainer(root, [recorder, ExportPretrained(str(root / "export"))])
    run.fit(module, datamodule=data)
    return {"root": root, "module": module, "data": data, "trainer": run, "batches": recorder.batches}


def test_score_only_samples_appear_only_in_their_phase(fitted):
    score_only_ids = {r.sample_id for r in fitted["data"].pools["score_only"]["train"]}
    seen = {epoch: set() for epoch in range(3)}
    for batch in fitted["batches"]:
        seen[batch["epoch"]].update(batch["sample_ids"])
    assert [b["phase"] for b in fitted["batches"][::BATCHES_PER_EPOCH]] == ["warmup", "mixed", "refresh"]
    assert not seen[0] & score_only_ids and not seen[2] & score_only_ids
    assert seen[1] & score_only_ids


def test_ce_is_computed_only_on_samples_with_a_critique(fitted):
    mixed_batches = 0
    for batch in fitted["batches"]:
        with_critique = [row for row, has in enumerate(batch["has_critique"]) if has]
        assert batch["ce_rows"] == with_critique
        mixed_batches += 0 < len(with_critique) < len(batch["has_critique"])
    assert mixed_batches > 0  # some batch really held both kinds


def test_fit_logs_losses_head_correlations_and_generation_metrics(fitted):
    logged = fitted["trainer"].callback_metrics
    for key in ("train/ce_epoch", "train/huber_epoch", "train/phase", "val/ce", "val/huber", "val/mean_srcc",
                "val/visual_quality_plcc", "val/content_preservation_krcc", "val/format_rate", "val/rouge1"):
        assert key in logged and math.isfinite(float(logged[key])), key
    assert float(logged["train/phase"]) == 3.0


def test_schedule_total_steps_follow_each_phases_epoch_length(fitted):
    data, run = fitted["data"], fitted["trainer"]
    lengths = [data.train_batches_in_epoch(epoch) for epoch in range(3)]
    assert lengths[1] > lengths[0] == lengths[2]
    assert total_optimizer_steps(run) == 3 * BATCHES_PER_EPOCH


def test_exported_critic_reproduces_the_trained_scores_and_greedy_text(fitted):
    module, data = fitted["module"], fitted["data"]
    exported = CriticModel.from_pretrained(fitted["root"] / "export")
    batch = next(iter(data.test_dataloader()))["generation"]
    trained = module.model.eval()
    before, after = trained.critique(batch, max_new_tokens=12), exported.critique(batch, max_new_tokens=12)
    assert torch.equal(before.scores, after.scores)
    assert before.texts == after.texts
    hp = data.hparams
    assert exported.input_budget == {k: hp[k] for k in ("max_pixels", "min_pixels", "max_length")}


def test_critique_command_writes_one_row_per_pair_and_metrics(fitted, synth_manifest, tmp_path):
    out = tmp_path / "critiques.jsonl"
    code = cli_main([
        "critique", "--ckpt", str(fitted["root"] / "export"), "--manifest", str(synth_manifest), "--split", "test",
        "--out", str(out), "--max-new-tokens", "8", "--limit", "5", "--batch-size", "4",  # budget: the export's
    ])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    metrics = json.loads(out.with_suffix(".metrics.json").read_text())
    assert code == 0 and len(rows) == 5 and len({r["pair_id"] for r in rows}) == 5
    assert set(rows[0]["head_scores"]) == {"visual_quality", "instruction_alignment", "content_preservation"}
    assert {"format_rate", "rouge1", "mean_srcc", "pairs"} <= set(metrics)


def test_phased_data_refuses_to_run_without_reloading_loaders(synth_manifest, tmp_path):
    with pytest.raises(ValueError, match="reload_dataloaders_every_n_epochs"):
        trainer(tmp_path, reload_dataloaders_every_n_epochs=0).fit(tiny_module(), datamodule=tiny_data(synth_manifest))


def test_tiny_config_builds_the_critic_and_the_paper_schedule(synth_manifest, tmp_path):
    # Its own run directory: building refuses one a `make sft` run left behind.
    cli = build_cli([
        "--config", str(REPO / "configs/sft/tiny.yaml"), "--data.init_args.manifest", str(synth_manifest),
        "--data.init_args.score_only_manifest", str(synth_manifest.parent / "pairs.jsonl"), "--trainer.logger", "false",
        "--trainer.default_root_dir", str(tmp_path),
    ], run=False)
    assert isinstance(cli.model, SFTModule) and isinstance(cli.datamodule, PhasedDataModule)
    assert [(p.name, p.epochs, p.pools) for p in cli.datamodule.phases] == [
        ("dual_warmup", (1, 1), ("score_cot",)),
        ("mixed_score_only", (2, 4), ("score_cot", "score_only")),
        ("dual_refresh", (5, 6), ("score_cot",)),
    ]
    assert cli.trainer.reload_dataloaders_every_n_epochs == 1
