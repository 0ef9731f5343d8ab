"""A shared export can carry weights and settings, never code: loading a hostile one runs nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ie_eval.models.backbone import BackboneLoadError, load_backbone
from ie_eval.models.reward_model import RewardModel

PAYLOAD = """
from pathlib import Path
Path(__file__).with_name("PWNED").write_text("remote code ran")
"""


def saved_rm(tmp_path: Path) -> Path:
    model = RewardModel.build("tiny-qwen3.5", {"seed": 0}, adapter=None)
    from ie_eval.models.adapters import AdapterConfig

    model.attach_adapter(AdapterConfig(kind="full"))
    return model.save_pretrained(tmp_path / "export")


@pytest.mark.parametrize("key", ["trust_remote_code", "revision", "device_map", "code_revision"])
def test_loader_options_in_the_export_config_are_refused_by_name(tmp_path, key) -> None:
    export = saved_rm(tmp_path)
    config_path = export / "reward_config.json"
    config = json.loads(config_path.read_text())
    config["backbone"][key] = True
    config_path.write_text(json.dumps(config))
    with pytest.raises(BackboneLoadError, match=f"refusing backbone key.*{key}"):
        RewardModel.from_pretrained(export)


def test_remote_code_named_by_a_checkpoint_is_never_imported(tmp_path) -> None:
    export = saved_rm(tmp_path)
    backbone = export / "backbone"
    (backbone / "evil_model.py").write_text(PAYLOAD)
    config = json.loads((backbone / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil_model.EvilConfig", "AutoModelForImageTextToText": "evil_model.Evil"}
    (backbone / "config.json").write_text(json.dumps(config))
    RewardModel.from_pretrained(export)  # the family's own classes load it; auto_map is ignored
    assert not (backbone / "PWNED").exists()

    config["model_type"] = "evil"
    (backbone / "config.json").write_text(json.dumps(config))
    with pytest.raises(BackboneLoadError):
        load_backbone(str(backbone))
    assert not (backbone / "PWNED").exists()


def test_a_tiny_preset_export_may_keep_its_size_fields(tmp_path) -> None:
    model = RewardModel.build("tiny-qwen3.5", {"seed": 0, "hidden_size": 32, "intermediate_size": 64}, adapter=None)
    from ie_eval.models.adapters import AdapterConfig

    model.attach_adapter(AdapterConfig(kind="lora", r=2, alpha=4))
    reloaded = RewardModel.from_pretrained(model.save_pretrained(tmp_path / "lora"))
    assert reloaded.backbone.base_model.model.config.get_text_config().hidden_size == 32
