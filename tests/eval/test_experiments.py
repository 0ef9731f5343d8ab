"""Every ablation overlay parses with LightningCLI on top of the tiny RE-Reward config and sets what it says."""

from pathlib import Path

import pytest
import yaml

from ie_eval.commands.fit import build_cli

try:  # DeepSpeed logs its accelerator choice to stdout on first import: here, not into a --print_config
    import deepspeed  # noqa: F401
except ImportError:
    pass

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


NOT_STAGES = {"shared", "strategy"}  # blocks a stage `extends`, overlays put after one (parsed below)
STAGE_CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").glob("*/*.yaml") if p.parent.name not in NOT_STAGES)
OVERLAYS_BY_STAGE = {
    "configs/rm/tiny.yaml": [p.name for p in (ROOT / "experiments").glob("rm_*.yaml")] + ["ablate_base.yaml"],
    "configs/sft/tiny.yaml": ["ablate_sft_base.yaml"] + [p.name for p in (ROOT / "experiments").glob("critic_*.yaml")],
    "configs/grpo/tiny.yaml": [p.name for p in (ROOT / "experiments").glob("grpo_*.yaml")],
    "configs/pairwise/tiny.yaml": [p.name for p in (ROOT / "experiments").glob("pairwise_*.yaml")],
}


def resolved(capsys, *args: str) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        build_cli(["fit", *args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.filterwarnings("ignore:LightningCLI")
@pytest.mark.parametrize("config", STAGE_CONFIGS)
def test_every_stage_config_resolves_with_every_path_under_its_one_run_directory(capsys, config):
    printed = resolved(capsys, "--config", str(ROOT / config))
    root = printed["trainer"]["default_root_dir"]
    assert "${" not in yaml.safe_dump(printed), "an interpolation was left unresolved"
    loggers = printed["trainer"]["logger"]
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        assert logger["init_args"]["save_dir"] == root
    dirs = [c["init_args"]["dirpath"] for c in printed["trainer"]["callbacks"] if "dirpath" in c.get("init_args", {})]
    assert dirs and all(d.startswith(f"{root}/") for d in dirs)
    # One flag moves the whole run: logs, checkpoints and export follow the run directory.
    moved = resolved(capsys, "--config", str(ROOT / config), "--trainer.default_root_dir", "elsewhere/run")
    text = yaml.safe_dump(moved["trainer"])
    assert root not in text and text.count("elsewhere/run") == 1 + len(dirs) + (len(loggers) if isinstance(loggers, list) else 1)


@pytest.mark.filterwarnings("ignore:LightningCLI")
@pytest.mark.parametrize(("config", "overlay"), [(c, o) for c, overlays in OVERLAYS_BY_STAGE.items() for o in overlays])
def test_every_overlay_parses_on_its_stage(capsys, config, overlay):
    printed = resolved(capsys, "--config", str(ROOT / config), "--config", str(ROOT / "experiments" / overlay))
    for key, value in leaves(yaml.safe_load((ROOT / "experiments" / overlay).read_text())).items():
        if not (isinstance(value, str) and "${" in value) and not isinstance(value, list):
            assert leaves(printed)[key] == value, f"{overlay}: {key}"


def test_every_experiment_overlay_is_covered_by_a_parse_test():
    named = {o for overlays in OVERLAYS_BY_STAGE.values() for o in overlays}
    not_overlays = {"ablate.yaml", "sweep_ablate.yaml"}  # the grid and the W&B sweep, checked above
    assert {p.name for p in (ROOT / "experiments").glob("*.yaml")} - not_overlays <= named


def test_extends_chains_merge_in_order_and_bad_chains_name_the_file(tmp_path):
    from ie_eval.commands.fit import ConfigChainError, config_chain, expand_configs

    (tmp_path / "base.yaml").write_text("trainer:\n  max_epochs: 1\n  devices: 1\n")
    (tmp_path / "mid.yaml").write_text("extends: base.yaml\ntrainer:\n  max_epochs: 2\n")
    (tmp_path / "top.yaml").write_text("extends: [mid.yaml]\ntrainer:\n  max_epochs: 3\n")
    chain = config_chain(tmp_path / "top.yaml")
    assert chain[0] == str(tmp_path / "base.yaml")
    assert [yaml.safe_load(part) for part in chain[1:]] == [{"trainer": {"max_epochs": 2}}, {"trainer": {"max_epochs": 3}}]
    assert expand_configs(["--seed_everything", "1", f"--config={tmp_path / 'base.yaml'}"]) == [
        "--seed_everything", "1", "--config", str(tmp_path / "base.yaml")]
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(ConfigChainError, match="loops back"):
        config_chain(tmp_path / "loop.yaml")
    (tmp_path / "orphan.yaml").write_text("extends: gone.yaml\n")
    with pytest.raises(ConfigChainError, match=r"gone\.yaml: config file not found \(named by `extends` in .*orphan\.yaml\)"):
        config_chain(tmp_path / "orphan.yaml")


STRATEGY_STAGES = {
    "ddp_cpu.yaml": "configs/rm/tiny.yaml", "ddp.yaml": "configs/rm/qwen3.5-4b.yaml",
    "fsdp_cpu.yaml": "configs/rm/tiny.yaml", "fsdp.yaml": "configs/sft/qwen3.5-9b.yaml",
    "deepspeed_stage_2.yaml": "configs/rm/qwen3.5-4b.yaml", "deepspeed_stage_2_offload.yaml": "configs/rm/qwen3.5-4b.yaml",
    "deepspeed_stage_3.yaml": "configs/sft/qwen3.5-9b.yaml", "deepspeed_stage_3_offload.yaml": "configs/sft/qwen3.5-9b.yaml",
    "paper_4x24gb.yaml": "configs/rm/qwen3.5-4b.yaml", "node_8x80gb.yaml": "configs/sft/qwen3.5-9b.yaml",
}


@pytest.mark.filterwarnings("ignore:LightningCLI")
@pytest.mark.parametrize("overlay", sorted(p.name for p in (ROOT / "configs/strategy").glob("*.yaml")))
def test_every_strategy_overlay_parses_on_a_stage_and_sets_its_values(capsys, overlay):
    assert overlay in STRATEGY_STAGES, f"configs/strategy/{overlay}: name the stage it is parsed on"
    printed = resolved(capsys, "--config", str(ROOT / STRATEGY_STAGES[overlay]), "--config", str(ROOT / "configs/strategy" / overlay))
    for key, value in leaves(yaml.safe_load((ROOT / "configs/strategy" / overlay).read_text())).items():
        assert leaves(printed)[key] == value, f"{overlay}: {key}"
    assert printed["trainer"]["use_distributed_sampler"] is False  # the stage's; ie-eval's samplers shard themselves
