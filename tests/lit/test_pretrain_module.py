"""The pretraining stage on a real Lightning Trainer: a few steps per family, export, exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

from ie_eval.data.pretrain.datamodule import PretrainDataModule
from ie_eval.data.pretrain.tasks import TRAIN_STREAM
from ie_eval.lit.callbacks import ExportPretrained
from ie_eval.lit.pretrain_module import PretrainModule
from ie_eval.models.backbone import load_backbone

REPO = Path(__file__).resolve().parents[2]
BUDGET = {"max_pixels": 64 * 64, "min_pixels": 32 * 32, "max_length": 512}


def tiny_module(backbone: str = "tiny-qwen3.5") -> PretrainModule:
    return PretrainModule(backbone, {"tokenizer": "synth-world", "seed": 0}, {"lr": 1e-3, "warmup_ratio": 0.0})


def tiny_data(**overrides) -> PretrainDataModule:
    kwargs = dict(seed=0, mix={"image_size": 64}, batch_size=4, eval_batch_size=8, val_samples_per_task=2, **BUDGET)
    return PretrainDataModule(**(kwargs | overrides))


def trainer(root: Path, callbacks=(), **overrides) -> L.Trainer:
    kwargs = dict(
        accelerator="cpu", max_steps=3, logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=root, num_sanity_val_steps=0, val_check_interval=3, check_val_every_n_epoch=None,
        gradient_clip_val=1.0, deterministic=True,
    )
    return L.Trainer(callbacks=list(callbacks), **(kwargs | overrides))


class SeenIndices(L.Callback):
    """The stream indices of every train batch, read from the sample ids."""

    def __init__(self) -> None:
        self.indices: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.indices += [int(sample_id.rsplit("-", 1)[1]) for sample_id in batch["sample_ids"]]


class Crash(RuntimeError):
    pass


class CrashAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise Crash(f"killed at step {self.step}")


@pytest.mark.parametrize("family", ["tiny-qwen2.5-vl", "tiny-qwen3-vl", "tiny-qwen3.5"])
def test_a_few_steps_lower_the_loss_log_blank_controls_and_export_a_loadable_checkpoint(family, tmp_path) -> None:
    L.seed_everything(0)
    module, data = tiny_module(family), tiny_data()
    run = trainer(tmp_path, [ExportPretrained(str(tmp_path / "export"))], max_steps=6, val_check_interval=6)
    run.fit(module, datamodule=data)
    logged = run.callback_metrics
    for key in ("train/loss", "val/loss", "val_images/verify_edit_accuracy", "val_blank/verify_edit_accuracy",
                "val_images/describe_accuracy"):
        assert key in logged and torch.isfinite(logged[key]), key
    reloaded = load_backbone(str(tmp_path / "export"))
    assert reloaded.family == module.family
    assert json.loads((tmp_path / "export" / "input_budget.json").read_text()) == BUDGET
    exported, trained = reloaded.model.state_dict(), module.model.state_dict()
    assert exported.keys() == trained.keys()
    assert all(torch.equal(exported[k], trained[k]) for k in trained)


def test_a_loaded_checkpoint_trains_in_train_mode(tmp_path) -> None:
    """from_pretrained returns eval mode; a backbone loaded from a directory must still train with dropout."""
    backbone = load_backbone("tiny-qwen3.5", tokenizer="synth-world")
    backbone.model.save_pretrained(tmp_path)
    backbone.processor.save_pretrained(tmp_path)

    class ModeAtStart(L.Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            self.eval_modules = [n for n, m in pl_module.named_modules() if not m.training]

    mode = ModeAtStart()
    module = PretrainModule(str(tmp_path), {}, {"lr": 1e-4})
    trainer(tmp_path / "run", [mode], max_steps=1, val_check_interval=1, limit_val_batches=0).fit(module, datamodule=tiny_data())
    assert mode.eval_modules == []


def test_resume_continues_at_the_next_unseen_sample_and_matches_an_uninterrupted_run(tmp_path) -> None:
    L.seed_everything(0)
    straight, seen_straight = tiny_module(), SeenIndices()
    trainer(tmp_path / "a", [seen_straight], max_steps=4, val_check_interval=4, limit_val_batches=0).fit(
        straight, datamodule=tiny_data()
    )
    assert seen_straight.indices == list(range(16))

    L.seed_everything(0)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "b", every_n_train_steps=2, save_last=True, save_top_k=0)
    first = trainer(tmp_path / "b", [checkpoint, CrashAt(3)], max_steps=4, val_check_interval=4, limit_val_batches=0)
    with pytest.raises(Crash):
        first.fit(tiny_module(), datamodule=tiny_data())

    resumed, seen = tiny_module(), SeenIndices()
    second = trainer(tmp_path / "b", [seen], max_steps=4, val_check_interval=4, limit_val_batches=0)
    second.fit(resumed, datamodule=tiny_data(), ckpt_path=tmp_path / "b" / "last.ckpt")
    assert seen.indices == list(range(8, 16))  # steps 2 and 3 of the stream, never the first batches again
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_sample_ids_name_the_train_stream(tmp_path) -> None:
    data = tiny_data()
    data.processor = load_backbone("tiny-qwen3.5", tokenizer="synth-world").processor
    run = trainer(tmp_path, max_steps=2)
    data.trainer = run
    batch = next(iter(data.train_dataloader()))
    assert batch["sample_ids"][0] == f"pretrain-s{TRAIN_STREAM}-0-0"


def test_an_endless_stream_needs_max_steps(tmp_path) -> None:
    data = tiny_data()
    data.processor = load_backbone("tiny-qwen3.5", tokenizer="synth-world").processor
    data.trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, default_root_dir=tmp_path)
    with pytest.raises(ValueError, match="max_steps"):
        data.train_dataloader()


def test_the_pretrain_config_parses_and_names_an_export(tmp_path) -> None:
    config = yaml.safe_load((REPO / "configs" / "pretrain" / "tiny.yaml").read_text())
    callbacks = [c["class_path"] for c in config["trainer"]["callbacks"]]
    assert "ie_eval.lit.callbacks.ExportPretrained" in callbacks
    assert config["trainer"]["max_steps"] > 0 and config["model"]["init_args"]["backbone_kwargs"]["tokenizer"] == "synth-world"


def test_curriculum_stages_switch_the_task_mix_at_their_step() -> None:
    from ie_eval.data.pretrain.datamodule import WorldStream, build_curriculum
    from ie_eval.data.pretrain.tasks import TaskMix

    base = TaskMix(image_size=32)
    stages = build_curriculum(base, [{"until_step": 3, "change": 0, "verify_edit": 0, "verify_image": 0}])
    stream = WorldStream(0, TRAIN_STREAM, base, 400, stages, samples_per_step=10)
    assert {stream[i].task for i in range(30)} == {"describe"}
    assert len({stream[i].task for i in range(30, 400)}) == 4
    with pytest.raises(ValueError, match="increase"):
        build_curriculum(base, [{"until_step": 5}, {"until_step": 5}])


def test_a_pretrain_export_that_fails_mid_write_keeps_the_earlier_one(tmp_path, monkeypatch) -> None:
    module = tiny_module()
    module.input_budget = dict(BUDGET)
    target = tmp_path / "export"
    module.export_pretrained(target)
    before = sorted(p.name for p in target.iterdir())
    assert "input_budget.json" in before

    def broken(directory):
        (Path(directory) / "half-written").write_text("x")
        raise OSError("disk full")

    monkeypatch.setattr(module.processor, "save_pretrained", broken)
    with pytest.raises(OSError, match="disk full"):
        module.export_pretrained(target)
    assert sorted(p.name for p in target.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no temporary directory left beside it
