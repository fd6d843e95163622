"""Fixtures for the engine tests: the built-in tiny model (two weight seeds) and prompts (helpers in helpers.py)."""

from __future__ import annotations

import pytest
import torch

from spiral.models.builtin import resolve_builtin
from tests.rollout.helpers import TINY, chat_prompt


@pytest.fixture(scope="session")
def tiny_path() -> str:
    return str(resolve_builtin(TINY))


@pytest.fixture(scope="session")
def tiny_seed1_model():
    """The same architecture and tokenizer as `builtin:tiny`, with weights drawn from seed 1."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(resolve_builtin(TINY, seed=1)), dtype=torch.float32).eval()


@pytest.fixture(scope="session")
def prompts(tiny_path) -> list[list[int]]:
    """Three chat prompts of different lengths (so batches need padding)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_path)
    texts = ["Kuhn Poker", "You are playing TicTacToe. Legal moves: [0], [4], [8].", "bet"]
    return [chat_prompt(tok, t) for t in texts]


@pytest.fixture(scope="session")
def long_prompt(tiny_path) -> list[int]:
    """A prompt spanning several 128-token KV blocks (where a stale prefix cache would show)."""
    from transformers import AutoTokenizer

    ids = chat_prompt(AutoTokenizer.from_pretrained(tiny_path), "You are playing Kuhn Poker. Your card is K. " * 40)
    assert len(ids) > 300
    return ids
