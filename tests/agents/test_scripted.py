"""Scripted agents: exact probabilities, the Kuhn equilibrium checked by OpenSpiel, perfect Tic-Tac-Toe."""

from __future__ import annotations

import random

import pytest

from spiral.agents import (
    KuhnNashAgent,
    MinimaxAgent,
    RandomAgent,
    UnsupportedGameError,
    make_agent,
)
from spiral.agents.arena import play_match
from spiral.games import make_game
from spiral.games.kuhn_poker import KuhnPoker


def _kuhn_at(key: str) -> KuhnPoker:
    """A one-hand game at OpenSpiel information state `key` (card, then p/b letters)."""
    card = int(key[0])
    player = (len(key) - 1) % 2
    deal = [0, 0]
    deal[player], deal[1 - player] = card, (card + 1) % 3
    game = KuhnPoker()
    game.reset_deal([tuple(deal)])
    for k, letter in enumerate(key[1:]):
        game.apply_action(game.action_for_letter(key[: k + 1], letter))
    return game


def _openspiel_exploitability(agent) -> float:
    pyspiel = pytest.importorskip("pyspiel")
    from open_spiel.python import policy as policy_lib
    from open_spiel.python.algorithms import exploitability

    spiel_game = pyspiel.load_game("kuhn_poker")
    tabular = policy_lib.TabularPolicy(spiel_game)
    for key, row in tabular.state_lookup.items():
        game = _kuhn_at(key)
        probs = agent.action_probabilities(game)
        tabular.action_probability_array[row] = [
            probs[game.action_for_letter(key, "p")],
            probs[game.action_for_letter(key, "b")],
        ]
    return exploitability.exploitability(spiel_game, tabular)


@pytest.mark.parametrize("alpha", [0.0, 0.15, 1 / 3])
def test_nash_agent_is_unexploitable_according_to_openspiel(alpha):
    assert _openspiel_exploitability(KuhnNashAgent(alpha)) == pytest.approx(0.0, abs=1e-9)


def test_random_agent_exploitability_matches_openspiel_known_value():
    assert _openspiel_exploitability(RandomAgent()) == pytest.approx(11 / 24, abs=1e-9)


def test_nash_refuses_other_games_and_variants():
    for game in [make_game("tic_tac_toe"), make_game("kuhn_poker", {"deck_size": 5})]:
        game.reset(0)
        with pytest.raises(UnsupportedGameError, match="standard Kuhn Poker"):
            KuhnNashAgent().action_probabilities(game)
    with pytest.raises(ValueError, match="alpha"):
        KuhnNashAgent(alpha=0.5)


def test_minimax_never_loses_to_random_and_draws_itself():
    minimax, rand = MinimaxAgent(), RandomAgent()
    as_first = play_match("tic_tac_toe", {}, [minimax, rand], n_games=150, seed=1)
    as_second = play_match("tic_tac_toe", {}, [rand, minimax], n_games=150, seed=2)
    assert as_first.loss_rate[0] == 0.0 and as_second.loss_rate[1] == 0.0
    assert as_first.win_rate[0] > 0.9  # X wins almost always against random
    mirror = play_match("tic_tac_toe", {}, [minimax, minimax], n_games=30, seed=3)
    assert mirror.draw_rate == [1.0, 1.0]


def test_minimax_takes_a_win_and_blocks_a_loss():
    game = make_game("tic_tac_toe")
    game.reset(0)
    for move in ["0", "4", "1"]:  # X threatens the top row; only blocking at 2 saves O
        game.apply_action(move)
    assert MinimaxAgent().action_probabilities(game)["2"] == 1.0
    game.reset(0)
    for move in ["0", "3", "1", "4"]:  # X can complete the top row now; everything else draws or loses
        game.apply_action(move)
    probs = MinimaxAgent().action_probabilities(game)
    assert probs["2"] == 1.0 and sum(probs.values()) == pytest.approx(1.0)
    with pytest.raises(UnsupportedGameError, match="size=3"):
        MinimaxAgent().action_probabilities(make_game("tic_tac_toe", {"size": 4}))


def test_noisy_minimax_mixes_perfect_play_with_uniform():
    game = make_game("tic_tac_toe")
    game.reset(0)
    for move in ["0", "4", "1"]:  # only 2 saves O; six cells are legal
        game.apply_action(move)
    probs = make_agent("minimax:epsilon=0.3").action_probabilities(game)
    assert probs["2"] == pytest.approx(0.7 + 0.3 / 6)
    assert all(probs[m] == pytest.approx(0.3 / 6) for m in ["3", "5", "6", "7", "8"])
    assert make_agent("minimax:epsilon=1").action_probabilities(game) == pytest.approx(
        RandomAgent().action_probabilities(game))
    assert make_agent("minimax:epsilon=0.3").name == "minimax:epsilon=0.3" and MinimaxAgent().name == "minimax"
    with pytest.raises(ValueError, match="epsilon must be in"):
        MinimaxAgent(epsilon=1.5)
    # Against random it still wins as X, but now it can lose: its random moves miss blocks.
    noisy = play_match("tic_tac_toe", {}, [RandomAgent(), MinimaxAgent(epsilon=0.5)], n_games=300, seed=4)
    perfect = play_match("tic_tac_toe", {}, [RandomAgent(), MinimaxAgent()], n_games=300, seed=4)
    assert perfect.loss_rate[1] == 0.0 < noisy.loss_rate[1]


def test_random_agent_is_uniform_and_act_samples_legal_moves():
    game = make_game("tic_tac_toe")
    game.reset(0)
    assert RandomAgent().action_probabilities(game) == {str(i): 1 / 9 for i in range(9)}
    rng = random.Random(0)
    seen = {RandomAgent().act(game, rng) for _ in range(200)}
    assert seen == set(game.legal_actions())


def test_make_agent_specs():
    assert isinstance(make_agent("random"), RandomAgent)
    nash = make_agent("nash:alpha=0.2")
    assert isinstance(nash, KuhnNashAgent) and nash.alpha == pytest.approx(0.2) and nash.name == "nash:alpha=0.2"
    with pytest.raises(ValueError, match="Did you mean 'minimax'.*Known agents: random, nash, minimax"):
        make_agent("minmax")
    with pytest.raises(ValueError, match="key=number"):
        make_agent("nash:alpha")
    with pytest.raises(ValueError, match="bad options for agent 'random'"):
        make_agent("random:temperature=1")
    for model_spec in ["builtin:tiny", "runs/exp1/checkpoints/step_10", "Qwen/Qwen3-4B-Base"]:
        with pytest.raises(ValueError, match="inference engine"):
            make_agent(model_spec)


def test_biased_random_agent_keeps_a_fixed_random_preference_per_information_state():
    from spiral.eval.exploitability import information_sets

    states = information_sets()
    biased, again, other = (make_agent(f"random:bias={b};seed={s}") for b, s in ((1, 13), (1, 13), (1, 14)))
    tables = [{key: agent.action_probabilities(game) for key, game in states.items()} for agent in (biased, again, other)]
    assert tables[0] == tables[1] and tables[0] != tables[2]
    for table in tables:
        assert all(abs(sum(p.values()) - 1.0) < 1e-12 and min(p.values()) > 0 for p in table.values())
    # The moves depend on the card: the three cards' bet probabilities differ after the same history.
    first = [tables[0][f"{card}"]["bet"] for card in range(3)]
    assert len({round(p, 6) for p in first}) == 3
    half = make_agent("random:bias=0.5;seed=13").action_probabilities(states["0"])
    assert half["bet"] == pytest.approx(0.25 + 0.5 * tables[0]["0"]["bet"])
    assert make_agent("random:bias=0").action_probabilities(states["0"]) == {"check": 0.5, "bet": 0.5}
    with pytest.raises(ValueError, match="bias"):
        make_agent("random:bias=1.5")
