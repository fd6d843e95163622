"""builtin:tiny-kuhn-format and builtin:small-kuhn-format: the built-in models warm-started by `spiral sft` answer
in the boxed format, with no strategy."""

from __future__ import annotations

import pytest

from spiral.eval.exploitability import model_exploitability
from spiral.models import resolve_model_path
from spiral.models.builtin import recipe_path
from spiral.rollout.engine_factory import create_engine
from spiral.types import SamplingSettings

pytestmark = pytest.mark.slow

UNIFORM_EXPLOITABILITY = 11 / 24


@pytest.mark.parametrize("name", ["tiny-kuhn-format", "small-kuhn-format"])
def test_the_warm_start_writes_legal_moves_and_plays_close_to_uniform(name: str) -> None:
    path = resolve_model_path(f"builtin:{name}")  # built by `spiral sft` with the recipe on first use
    assert resolve_model_path(f"builtin:{name}") == path  # then cached
    assert recipe_path(name).is_file()
    engine = create_engine("hf", path, dtype="float32", max_model_len=1024, seed=0)
    sampled = model_exploitability(engine, "direct", SamplingSettings(1.0, 1.0, 12, seed=0), samples=64)
    assert sampled.invalid_mean <= 0.02 and sampled.fallbacks == 0
    # The exact mass on anything but one legal boxed move (0.09% tiny, 0.56% small): RL starts from it.
    assert model_exploitability(engine, "direct", SamplingSettings(1.0, 1.0, 12), samples=0).invalid_mean <= 0.01
    # No strategy: as exploitable as uniform play, within what 64 samples per information set resolve.
    assert abs(sampled.exploitability - UNIFORM_EXPLOITABILITY) <= 0.08
    # ...but its moves depend on the card: it was taught to read it (the teacher's table differs by card).
    facing_bet = [sampled.policy[f"{card}b"]["call"] for card in range(3)]
    assert max(facing_bet) - min(facing_bet) >= 0.2


def test_unknown_builtin_names_list_the_warm_starts() -> None:
    with pytest.raises(ValueError, match="builtin:tiny-kuhn-format"):
        resolve_model_path("builtin:tiny-kuhn")
