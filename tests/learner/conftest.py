"""Fixtures for learner tests: the built-in tiny model (helpers in helpers.py)."""

from __future__ import annotations

import pytest

import tests.learner.helpers  # noqa: F401  (picks DeepSpeed's accelerator before anything imports DeepSpeed)


@pytest.fixture(scope="session")
def tiny_path() -> str:
    from spiral.models import resolve_model_path

    return resolve_model_path("builtin:tiny")
