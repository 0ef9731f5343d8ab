"""Everything the GPU suite imports is in the GPU machines' image or among the wheels carried to it: the
suite runs once, on a rare machine that can fetch nothing, so a new dependency must fail here, not there."""

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
# Imported by the code the suite loads, on paths none of its steps takes, and not installed here.
NOT_ON_THE_SUITES_PATHS = {"bitsandbytes": "QLoRA's 4-bit base; no step of the suite runs QLoRA",
                           "vllm": "the vLLM rollout backend; the suite's rollouts are the HF engine's",
                           "qwen_vl_utils": "chat-message inputs (the RE-Reward server's); the suite's GRPO step "
                                            "uses the format reward, no server"}


def listed(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def suite_scripts() -> set[str]:
    text = (BENCHMARKS / "gpu_suite.sh").read_text()
    return set(re.findall(r"benchmarks/(\w+)\.py", text))


def module_file(name: str) -> Path | None:
    """The file of a project module (`ie_eval...` or a benchmark-local one), else None (stdlib, third party)."""
    parts = name.split(".")
    if parts[0] == "ie_eval":
        base = ROOT.joinpath(*parts)
    elif (BENCHMARKS / f"{parts[0]}.py").is_file() and len(parts) == 1:
        base = BENCHMARKS / parts[0]
    else:
        return None
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def third_party_imports(scripts: set[str]) -> dict[str, set[str]]:
    """Top-level names of every non-project import, module-level or inside a function, in the scripts and
    the project modules they reach (statically, so lazy imports count) -> the files that import them."""
    todo = [BENCHMARKS / f"{s}.py" for s in scripts]
    seen: set[Path] = set()
    found: dict[str, set[str]] = {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                target = module_file(name)
                if target is not None:
                    todo.append(target)
                elif name.split(".")[0] not in ("ie_eval", *sys.stdlib_module_names) and module_file(
                        name.split(".")[0]) is None:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_suite_runs_the_benchmarks_the_closure_follows():
    assert {"linear_ce", "score_only", "rollouts", "sft_step", "grpo_step"} <= suite_scripts()


def test_every_package_the_gpu_suite_imports_is_on_the_gpu_image_or_carried():
    available = {canonicalize_name(n) for n in listed(BENCHMARKS / "gpu_image_packages.txt")}
    carried = {canonicalize_name(Requirement(line).name) for line in listed(BENCHMARKS / "gpu_wheels.txt")}
    distributions = packages_distributions()
    missing = []
    for name, importers in sorted(third_party_imports(suite_scripts()).items()):
        if name in NOT_ON_THE_SUITES_PATHS:
            continue
        owners = {canonicalize_name(d) for d in distributions.get(name, [])}
        assert owners, f"{name} (imported by {sorted(importers)}) is not installed here"
        if not owners & (available | carried):
            missing.append(f"{name} ({sorted(owners)}, imported by {sorted(importers)[:3]})")
    assert not missing, "add to benchmarks/gpu_wheels.txt: " + "; ".join(missing)


def test_carried_wheels_are_pinned_and_fla_matches_the_gpu_extra():
    requirements = [Requirement(line) for line in listed(BENCHMARKS / "gpu_wheels.txt")]
    for requirement in requirements:
        (pin,) = requirement.specifier
        assert pin.operator == "==", f"{requirement}: pin it as name==version"
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    fla = {str(r) for r in map(Requirement, extra) if r.name == "flash-linear-attention"}
    assert fla and fla <= {str(r) for r in requirements}
    available = {canonicalize_name(n) for n in listed(BENCHMARKS / "gpu_image_packages.txt")}
    assert not {canonicalize_name(r.name) for r in requirements} & available, "carry only what the image lacks"


def test_the_closure_sees_lazy_imports():
    """grpo_step imports trl inside a function: the static walk must still find it (or the check is blind)."""
    assert "trl" in third_party_imports({"grpo_step"})
