"""The conda environment and the pip metadata must describe the same runtime."""

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_names_every_runtime_dependency():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    runtime = {_name(r) for r in pyproject["project"]["dependencies"]}
    env_text = (REPO / "environment.yml").read_text()
    listed = {_name(m.group(1)) for m in re.finditer(r"^\s*-\s+([A-Za-z0-9_.\-]+[^\n#]*)", env_text, re.M)}
    missing = sorted(runtime - listed)
    assert not missing, f"environment.yml lacks runtime dependencies of pyproject.toml: {missing}"


def test_pins_match_between_files():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    env_text = (REPO / "environment.yml").read_text()
    for req in pyproject["project"]["dependencies"]:
        if "==" in req:
            assert req.replace(" ", "") in env_text.replace(" ", ""), f"pin {req} differs in environment.yml"


def test_torch_and_neuron_pinned():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.13.0" in deps and "neuron==9.0.2" in deps
