"""Every ablation overlay parses with LightningCLI on top of the tiny RE-Reward config and sets what it says."""

from pathlib import Path

import pytest
import yaml

from ie_eval.commands.fit import build_cli

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = sorted(p.name for p in (ROOT / "experiments").glob("rm_*.yaml"))


def printed_config(capsys, *overlays: str) -> dict:
    args = ["fit", "--config", str(ROOT / "configs/rm/tiny.yaml")]
    args += [arg for overlay in overlays for arg in ("--config", str(ROOT / "experiments" / overlay))]
    with pytest.raises(SystemExit) as exit_info:
        build_cli([*args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out |= leaves(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.filterwarnings("ignore:LightningCLI")
def test_every_overlay_parses_and_sets_its_values(capsys):
    base = leaves(printed_config(capsys))
    assert base["model.init_args.loss.huber_delta"] == 1.0
    for overlay in OVERLAYS:
        config = leaves(printed_config(capsys, overlay))
        for key, value in leaves(yaml.safe_load((ROOT / "experiments" / overlay).read_text())).items():
            assert config[key] == value, f"{overlay}: {key}"
        # Fields the overlay does not name keep the base value (nested dicts merge, not replace).
        assert config["model.init_args.loss.huber_delta"] == base["model.init_args.loss.huber_delta"], overlay
        assert config["trainer.max_epochs"] == base["trainer.max_epochs"], overlay


def test_sweep_lists_existing_overlays_and_three_seeds():
    sweep = yaml.safe_load((ROOT / "experiments/sweep_ablate.yaml").read_text())
    values = sweep["parameters"]["config"]["values"]
    assert all((ROOT / v).is_file() for v in values)
    assert {f"experiments/{name}" for name in OVERLAYS} <= set(values)
    assert sweep["parameters"]["seed_everything"]["values"] == [0, 1, 2]
