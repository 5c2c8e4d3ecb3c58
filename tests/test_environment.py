"""The pinned environment: requirements.txt and environment.yml must not drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert m, f"not an exact pin: {line!r}"
        out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_requirements_and_environment_yml_agree():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda = _pins([x for x in pip_block if isinstance(x, str)])
    assert req == conda
    assert "python=3.11" in env["dependencies"]


def test_torch_pinned_beside_monai():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    assert req["torch"] == "2.13.0" and "monai" in req


def test_pyproject_lists_every_pinned_runtime_package():
    text = (ROOT / "pyproject.toml").read_text()
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    for name in req:
        if name == "pytest":
            continue
        assert f'"{name}>=' in text, f"{name} is pinned but not a dependency in pyproject.toml"
