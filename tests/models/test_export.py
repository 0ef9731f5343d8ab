"""Exports are written whole or not at all: an interrupted save keeps the earlier export and leaves nothing
that loads as finished; a finished one replaces it."""

from pathlib import Path

import pytest
import torch

import ie_eval.models.reward_model as reward_model_module
from ie_eval.models.critic import CriticModel
from ie_eval.models.export import atomic_export, check_finished_export, temporary_sibling
from ie_eval.models.heads import HeadConfig
from ie_eval.models.reward_model import CONFIG_NAME, HEAD_NAME, RewardModel


def tiny_rm(seed: int) -> RewardModel:
    torch.manual_seed(seed)
    return RewardModel.build("tiny-qwen3-vl", head=HeadConfig(hidden_size=16, dropout=0.0)).eval()


def head_weights(model: RewardModel) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.head.state_dict().items()}


def siblings(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.parent.iterdir())


def test_a_save_that_fails_mid_write_keeps_the_earlier_export_and_leaves_no_partial(tmp_path, monkeypatch):
    earlier = tiny_rm(0)
    export = earlier.save_pretrained(tmp_path / "rm")
    calls = []

    def save_file_then_die(tensors, path):
        calls.append(Path(path))
        raise OSError("disk full")  # as a kill mid-write would leave it: some files, no config

    monkeypatch.setattr(reward_model_module, "save_file", save_file_then_die)
    with pytest.raises(OSError, match="disk full"):
        tiny_rm(1).save_pretrained(export)
    assert calls and calls[0].parent == temporary_sibling(export)  # written beside the export, not into it
    assert siblings(export) == ["rm"]
    monkeypatch.undo()
    reloaded = RewardModel.from_pretrained(export)
    assert all(torch.equal(reloaded.head.state_dict()[k], v) for k, v in head_weights(earlier).items())


def test_a_finished_save_replaces_the_earlier_export_whole(tmp_path):
    export = tiny_rm(0).save_pretrained(tmp_path / "rm")
    (export / "calibration.json").write_text("{}")  # a file only the earlier export had
    newer = tiny_rm(1)
    newer.save_pretrained(export)
    assert siblings(export) == ["rm"]
    assert not (export / "calibration.json").exists()
    reloaded = RewardModel.from_pretrained(export)
    assert all(torch.equal(reloaded.head.state_dict()[k], v) for k, v in head_weights(newer).items())


def test_a_killed_saves_leftover_is_refused_by_name_when_loaded(tmp_path):
    export = tiny_rm(0).save_pretrained(tmp_path / "critic-like")
    leftover = tmp_path / "rm.tmp-4242"
    leftover.mkdir()
    (leftover / HEAD_NAME).write_bytes((export / HEAD_NAME).read_bytes())  # killed before the config was written
    with pytest.raises(FileNotFoundError, match=r"rm\.tmp-4242: an unfinished RewardModel export.*renamed to .*rm\b"):
        RewardModel.from_pretrained(leftover)
    (leftover / CONFIG_NAME).write_text((export / CONFIG_NAME).read_text())  # even with a config it is refused
    with pytest.raises(FileNotFoundError, match="unfinished"):
        RewardModel.from_pretrained(leftover)
    with pytest.raises(FileNotFoundError, match=r"not a saved CriticModel \(no critic_config.json\)"):
        CriticModel.from_pretrained(export)


def test_an_export_never_replaces_a_directory_that_is_not_one(tmp_path):
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "manifest.jsonl").write_text("{}\n")
    with pytest.raises(FileExistsError, match="is not an earlier export"):
        tiny_rm(0).save_pretrained(precious)
    assert (precious / "manifest.jsonl").read_text() == "{}\n"
    assert siblings(precious) == ["data"]


def test_an_export_body_that_writes_no_marker_is_not_renamed_into_place(tmp_path):
    with pytest.raises(RuntimeError, match="wrote no config.json"):
        with atomic_export(tmp_path / "pretrained", "config.json") as partial:
            (partial / "model.safetensors").write_bytes(b"")
    assert list(tmp_path.iterdir()) == []
    with atomic_export(tmp_path / "pretrained", "config.json") as partial:
        (partial / "config.json").write_text("{}")
    assert check_finished_export(tmp_path / "pretrained", "config.json", "backbone") == tmp_path / "pretrained"
