"""The GPU extras of pyproject.toml: every package pinned, and every package used by a config or a code path."""

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
GPU_EXTRAS = ("gpu", "gpu-build")


def qwen35_modeling() -> str:
    """Source of transformers' Qwen3.5 model, whose linear-attention layers import the kernels when installed."""
    import inspect

    from transformers.models.qwen3_5 import modeling_qwen3_5

    return inspect.getsource(modeling_qwen3_5)


def tree_text(folder: str, suffix: str) -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / folder).rglob(f"*{suffix}")))


# package -> (where, pattern) pairs that must all match: the use that justifies installing it.
EVIDENCE: dict[str, list[tuple[str, str]]] = {
    "bitsandbytes": [("ie_eval", r"import bitsandbytes"), ("configs", r"kind: qlora")],
    "flash-attn": [("configs", r"attn_implementation: flash_attention_2"), ("ie_eval", r'"flash_attn"')],
    "flash-linear-attention": [("configs", r"Qwen/Qwen3\.5-"), ("qwen3_5", r"\bfla\b")],
    "causal-conv1d": [("configs", r"Qwen/Qwen3\.5-"), ("qwen3_5", r"\bcausal_conv1d\b")],
}
SOURCES = {
    "ie_eval": lambda: tree_text("ie_eval", ".py"),
    "configs": lambda: tree_text("configs", ".yaml"),
    "qwen3_5": qwen35_modeling,
}


def gpu_requirements() -> list[Requirement]:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return [Requirement(line) for extra in GPU_EXTRAS for line in extras[extra]]


def test_every_gpu_package_is_pinned_to_one_version():
    for requirement in gpu_requirements():
        pins = [s for s in requirement.specifier if s.operator == "==" and "*" not in s.version]
        assert len(pins) == 1 and len(requirement.specifier) == 1, f"{requirement}: pin it as name==version"


def test_every_gpu_package_has_a_stated_use():
    assert {r.name for r in gpu_requirements()} == set(EVIDENCE), "add its use to EVIDENCE, or drop the package"


@pytest.mark.parametrize("package", sorted(EVIDENCE))
def test_gpu_package_is_used_by_a_config_or_code_path(package):
    for where, pattern in EVIDENCE[package]:
        assert re.search(pattern, SOURCES[where]()), f"{package}: nothing in {where} matches {pattern!r}"
