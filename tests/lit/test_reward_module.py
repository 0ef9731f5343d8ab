"""RewardModule with a real Lightning Trainer on the tiny synthetic benchmark."""

import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

from ie_eval.cli import main as cli_main
from ie_eval.data.datamodule import EditDataModule
from ie_eval.lit.callbacks import ExportPretrained
from ie_eval.lit.reward_module import RewardModule
from ie_eval.models.reward_model import RewardModel

REPO = Path(__file__).resolve().parents[2]


def tiny_module(**overrides):
    kwargs = dict(
        backbone="tiny-qwen3-vl", adapter={"kind": "full"}, head={"hidden_size": 32, "dropout": 0.0},
        loss={"rank_queue_size": 32, "plcc_queue_size": 32}, optim={"lr": 1e-3, "head_lr": 1e-3},
    )
    return RewardModule(**(kwargs | overrides))


def tiny_data(manifest, **overrides):
    kwargs = dict(manifest=str(manifest), batch_size=8, max_pixels=64 * 64, min_pixels=32 * 32, max_length=1024)
    return EditDataModule(**(kwargs | overrides))


def trainer(tmp_path, callbacks=(), **overrides):
    kwargs = dict(
        accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path, num_sanity_val_steps=0, use_distributed_sampler=False, limit_train_batches=4,
        limit_val_batches=2, deterministic=True,
    )
    return L.Trainer(callbacks=list(callbacks), **(kwargs | overrides))


class SimulatedCrash(RuntimeError):
    pass


class InterruptAt(L.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise SimulatedCrash(f"killed at step {self.step}")


class RecordStartStep(L.Callback):
    def on_train_start(self, trainer, pl_module):
        self.start_step = trainer.global_step


def test_fit_logs_correlations_and_exports_a_model_that_reproduces_scores(synth_manifest, tmp_path):
    L.seed_everything(0)
    module, data = tiny_module(), tiny_data(synth_manifest)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/mean_srcc", mode="max", save_last=True)
    run = trainer(tmp_path, [checkpoint, ExportPretrained(str(tmp_path / "export"))], max_epochs=2)
    run.fit(module, datamodule=data)
    logged = run.callback_metrics
    for key in ("val/mean_srcc", "val/accuracy_plcc", "val/logicality_krcc", "train/rank", "train/plcc"):
        assert key in logged and math.isfinite(float(logged[key]))
    best = RewardModule.load_from_checkpoint(checkpoint.best_model_path, weights_only=True).eval()
    exported = RewardModel.from_pretrained(tmp_path / "export")
    assert exported.input_budget == {"max_pixels": 64 * 64, "min_pixels": 32 * 32, "max_length": 1024}
    batch = next(iter(data.test_dataloader()))
    with torch.no_grad():
        assert torch.equal(exported(batch), best.model(batch))


def test_resumed_fit_continues_from_the_checkpoint_step_and_matches_uninterrupted(synth_manifest, tmp_path):
    L.seed_everything(0)
    straight = tiny_module()
    trainer(tmp_path / "a", max_epochs=2).fit(straight, datamodule=tiny_data(synth_manifest))

    L.seed_everything(0)
    interrupted = tiny_module()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "b", save_last=True)
    first = trainer(tmp_path / "b", [checkpoint, InterruptAt(step=6)], max_epochs=2)
    with pytest.raises(SimulatedCrash):
        first.fit(interrupted, datamodule=tiny_data(synth_manifest))
    assert first.global_step == 6

    recorder = RecordStartStep()
    resumed = tiny_module()
    second = trainer(tmp_path / "b", [recorder], max_epochs=2)
    second.fit(resumed, datamodule=tiny_data(synth_manifest), ckpt_path=tmp_path / "b" / "last.ckpt")
    assert recorder.start_step == 4 and second.global_step == 8
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_cli_fit_with_the_tiny_yaml_runs_offline(synth_manifest, tmp_path):
    overlay = {
        "trainer": {
            "default_root_dir": str(tmp_path), "fast_dev_run": 2, "logger": False,
            "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": str(tmp_path / "ckpt")}}],
        },
        "data": {"init_args": {"manifest": str(synth_manifest)}},
    }
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    config = str(REPO / "configs" / "rm" / "tiny.yaml")
    assert cli_main(["fit", "--config", config, "--config", str(tmp_path / "overlay.yaml")]) == 0


def test_missing_targets_name_the_split_and_samples(synth_manifest, tmp_path):
    rows = [json.loads(line) for line in synth_manifest.read_text().splitlines()]
    for row in rows:
        row["source_image"] = str(synth_manifest.parent / row["source_image"])
        row["edited_image"] = str(synth_manifest.parent / row["edited_image"])
    rows[0].pop("critique_scores")
    broken = tmp_path / "manifest.jsonl"
    broken.write_text("\n".join(json.dumps(r) for r in rows))
    data = tiny_data(broken)
    with pytest.raises(ValueError, match=r"lack critique / critique_scores.*" + rows[0]["pair_id"]):
        data.setup("fit")


def test_nan_target_in_manifest_names_file_and_row(synth_manifest, tmp_path):
    lines = synth_manifest.read_text().splitlines()
    row = json.loads(lines[2])
    row["critique_scores"][1] = float("nan")
    row["source_image"] = str(synth_manifest.parent / row["source_image"])
    row["edited_image"] = str(synth_manifest.parent / row["edited_image"])
    broken = tmp_path / "nan.jsonl"
    broken.write_text(json.dumps(row))
    with pytest.raises(ValueError, match=rf"{broken}:1.*critique_scores"):
        tiny_data(broken).setup("fit")


def test_unknown_pooling_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown pooling 'cls'"):
        tiny_module(pooling="cls")


def test_qlora_requested_on_cpu_fails_before_training():
    if torch.cuda.is_available():
        pytest.skip("CPU-only behaviour")
    with pytest.raises(RuntimeError, match="qlora.*CUDA GPU"):
        tiny_module(adapter={"kind": "qlora"})


def test_bf16_true_fit_trains_a_bf16_backbone_under_a_float32_head(synth_manifest, tmp_path):
    """The paper's RM config trains in bf16-true: the cast reaches every module, but the head stays float32."""
    L.seed_everything(0)
    module, data = tiny_module(backbone="tiny-qwen3.5", reward_weights=[0.3, 0.3, 0.4]), tiny_data(synth_manifest)
    head_before = {k: v.clone() for k, v in module.model.head.state_dict().items()}
    run = trainer(tmp_path, precision="bf16-true", limit_train_batches=2, deterministic=False)
    run.fit(module, datamodule=data)
    assert run.global_step == 2 and math.isfinite(float(run.callback_metrics["val/mean_srcc"]))
    assert {p.dtype for p in module.model.backbone.parameters()} == {torch.bfloat16}
    head = module.model.head.state_dict()
    assert {v.dtype for v in head.values()} == {torch.float32}
    assert any(not torch.equal(head[k], head_before[k]) for k in head)  # the float32 head trained
    assert module.model.reward_weights.tolist() == pytest.approx([0.3, 0.3, 0.4], abs=1e-7)  # not rounded to bf16
