"""builtin:tiny-openspiel: the tiny model whose tokenizer also learned the OpenSpiel games' prose."""

from __future__ import annotations

import math

import pytest

from spiral.games.registry import make_game
from spiral.models import resolve_model_path
from spiral.rollout.choice import choice_logprobs
from spiral.rollout.engine_factory import create_engine
from spiral.rollout.prompts import build_prompt

pytestmark = pytest.mark.slow  # builds the model and its tokenizer on first use (~25 s)


def _untrained_raise_probability(name: str) -> tuple[list[str], float]:
    """How `raise` tokenises for `builtin:name`, and the untrained model's choice probability of it at Leduc's first move."""
    engine = create_engine("hf", resolve_model_path(f"builtin:{name}"), dtype="float32", max_model_len=1024, seed=0)
    game = make_game("openspiel:leduc_poker")
    game.reset(0)
    legal = game.legal_actions()
    assert "raise" in legal
    prompt = build_prompt(game, game.current_player(), "direct", engine.tokenizer)
    _, (logprobs,) = choice_logprobs(engine, [prompt], [legal], temperature=1.0)
    return engine.tokenizer.tokenize("raise"), math.exp(logprobs[legal.index("raise")])


def test_the_untrained_model_raises_in_leduc_only_when_raise_is_one_token() -> None:
    # The plain tokenizer (built from spiral's own games) splits `raise`, so the untrained model almost never raises...
    pieces, p_raise = _untrained_raise_probability("tiny")
    assert len(pieces) == 2 and p_raise < 0.01
    # ...while the one that also learned the OpenSpiel games' prose keeps it whole, and raises like the other moves.
    pieces, p_raise = _untrained_raise_probability("tiny-openspiel")
    assert pieces == ["raise"] and p_raise >= 0.2
