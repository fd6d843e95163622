"""The arena: per-seat statistics, seeding and how an illegal move from an agent ends the game."""

from __future__ import annotations

import math

import pytest

from spiral.agents import Agent, KuhnNashAgent, RandomAgent
from spiral.agents.arena import play_match
from spiral.games import Game


def test_random_kuhn_first_seat_earns_one_eighth_within_the_standard_error():
    result = play_match("kuhn_poker", {}, [RandomAgent(), RandomAgent()], n_games=4000, seed=0)
    assert result.games == 4000 and result.agents == ["random", "random"]
    assert abs(result.mean_return[0] - 1 / 8) < 4 * result.stderr_return[0]
    assert result.mean_return[0] == pytest.approx(-result.mean_return[1])
    assert result.win_rate[0] + result.loss_rate[0] + result.draw_rate[0] == pytest.approx(1.0)
    assert 2.0 <= result.mean_length <= 3.0


def test_nash_beats_random_and_matches_are_reproducible():
    a = play_match("kuhn_poker", {}, [RandomAgent(), KuhnNashAgent()], n_games=2000, seed=7)
    b = play_match("kuhn_poker", {}, [RandomAgent(), KuhnNashAgent()], n_games=2000, seed=7)
    assert a == b
    # The second seat's equilibrium (alpha=0) earns exactly 1/6 per hand against uniform random play
    # (by enumeration over deals: J bluffs a third of the time after a check, calls with Q a third).
    assert abs(a.mean_return[1] - 1 / 6) < 4 * a.stderr_return[1]


class Blunderer(Agent):
    """Answers every turn with a move no game accepts."""

    name = "blunderer"

    def action_probabilities(self, game: Game) -> dict[str, float]:
        return {"\\boxed{nonsense}": 1.0}


def test_illegal_moves_forfeit_the_game():
    result = play_match("tic_tac_toe", {}, [RandomAgent(), Blunderer()], n_games=20, seed=0)
    assert result.invalid_rate == [0.0, 1.0]
    assert result.mean_return == [1.0, -1.0]
    assert result.mean_length == 2.0  # X's move, then the blunder
    assert math.isclose(result.win_rate[0], 1.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="needs 2 agents"):
        play_match("kuhn_poker", {}, [RandomAgent()], n_games=1)
    with pytest.raises(ValueError, match="n_games"):
        play_match("kuhn_poker", {}, [RandomAgent(), RandomAgent()], n_games=0)
