"""Property tests: `parse_action` never raises on any text and returns a legal move or None."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spiral.games import list_games, make_game

GAMES = [info.name for info in list_games() if info.source.startswith("spiral.")]

move_like = st.sampled_from(
    ["\\boxed{", "}", "{", "\\boxed{}", "bet", "4", "Offer: I give 1 Wood -> you give 1 Sheep", "Accept",
     "Bid: 2 3", "Liar", "roll", "hold", "[", "]", "->", " ", "9" * 50, "\\text{", "é", "\x00"]
)  # fmt: skip
texts = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(move_like, st.text(max_size=5)), max_size=40).map("".join),
    st.text(max_size=40).map(lambda t: "\\boxed{" + t + "}"),
    st.integers(0, 200).map(lambda n: "\\boxed{" * n + "}" * (n // 2)),
)


def _states(name: str):
    """A few positions of the game: the start and after some moves."""
    game = make_game(name)
    game.reset(1)
    yield game
    while not game.is_terminal():
        game.apply_action(game.legal_actions()[-1])
        yield game


@pytest.mark.parametrize("name", GAMES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts)
def test_parse_action_returns_a_legal_move_or_none(name, text):
    for i, game in enumerate(_states(name)):
        if i > 3 or game.is_terminal():
            break
        parsed = game.parse_action(text)
        assert parsed is None or parsed in game.legal_actions() or name == "simple_negotiation"
        if parsed is not None:
            game_copy = make_game(name)  # a parsed move must be accepted by apply_action
            game_copy.reset(1)
            for _ in range(i):
                game_copy.apply_action(game_copy.legal_actions()[-1])
            game_copy.apply_action(parsed)


@pytest.mark.parametrize("name", GAMES)
def test_huge_inputs_are_handled_quickly(name):
    game = make_game(name)
    game.reset(0)
    for text in ["\\boxed{" * 100_000, "{" * 100_000 + "\\boxed{bet}", "\\boxed{" + "9" * 100_000 + "}", "💥" * 100_000]:
        parsed = game.parse_action(text)
        assert parsed is None or parsed in game.legal_actions()
