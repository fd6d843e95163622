"""Kuhn Poker rules against known values: exact enumeration, OpenSpiel payoffs and information states."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest

from spiral.agents import KuhnNashAgent, RandomAgent
from spiral.games import IllegalMoveError, make_game
from spiral.games.kuhn_poker import KuhnPoker

DEALS = list(itertools.permutations(range(3), 2))
SEQUENCES = [["check", "check"], ["check", "bet", "call"], ["check", "bet", "fold"], ["bet", "call"], ["bet", "fold"]]


def _state(deal, moves, **params) -> KuhnPoker:
    game = KuhnPoker(**params)
    game.reset_deal([deal])
    for move in moves:
        game.apply_action(move)
    return game


def _expected_return(agents, deal, moves=()) -> Fraction:
    """Seat 0's exact expected chips from this point, enumerating every move with its probability."""
    game = _state(deal, moves)
    if game.is_terminal():
        return Fraction(game.returns()[0]).limit_denominator()
    probs = agents[game.current_player()].action_probabilities(game)
    return sum(
        (Fraction(p).limit_denominator(10**6) * _expected_return(agents, deal, (*moves, a)) for a, p in probs.items() if p),
        Fraction(0),
    )


def _game_value(agents) -> Fraction:
    return sum((_expected_return(agents, deal) for deal in DEALS), Fraction(0)) / len(DEALS)


def test_uniform_random_play_is_worth_one_eighth_to_the_first_player():
    assert _game_value([RandomAgent(), RandomAgent()]) == Fraction(1, 8)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.2, 1 / 3])
def test_equilibrium_self_play_is_worth_minus_one_eighteenth(alpha):
    value = _game_value([KuhnNashAgent(alpha), KuhnNashAgent(alpha)])
    assert float(value) == pytest.approx(-1 / 18, abs=1e-9)


def test_payoffs_and_information_states_match_openspiel():
    pyspiel = pytest.importorskip("pyspiel")
    spiel_game = pyspiel.load_game("kuhn_poker")
    letter_to_action = {"p": 0, "b": 1}
    for deal in DEALS:
        for moves in SEQUENCES:
            ours = _state(deal, [])
            theirs = spiel_game.new_initial_state()
            theirs.apply_action(deal[0])
            theirs.apply_action(deal[1])
            for move in moves:
                player = ours.current_player()
                assert player == theirs.current_player()
                for seat in (0, 1):
                    assert ours.information_state(seat) == theirs.information_state_string(seat)
                letter = "b" if move in ("bet", "call") else "p"
                assert ours.action_for_letter(ours.information_state(player), letter) == move
                ours.apply_action(move)
                theirs.apply_action(letter_to_action[letter])
            assert ours.is_terminal() and theirs.is_terminal()
            assert ours.returns() == theirs.returns(), (deal, moves)


def test_information_states_lists_the_twelve_decision_points():
    seen = {0: set(), 1: set()}
    for deal in DEALS:
        for moves in SEQUENCES:
            for k in range(len(moves)):
                game = _state(deal, moves[:k])
                seen[game.current_player()].add(game.information_state(game.current_player()))
    assert seen[0] == set(KuhnPoker.information_states(0)) and len(seen[0]) == 6
    assert seen[1] == set(KuhnPoker.information_states(1)) and len(seen[1]) == 6


def test_bets_and_calls_really_go_into_the_pot():
    game = _state((0, 2), ["check", "bet", "call"])  # J vs K, called: K wins 2
    assert game.returns() == [-2.0, 2.0]
    assert _state((2, 0), ["bet", "fold"]).returns() == [1.0, -1.0]
    assert "Pot: 3" in _state((2, 0), ["check", "bet"]).observation(0)  # 2 antes + 1 bet


def test_observation_hides_the_opponents_card_until_showdown():
    game = KuhnPoker()
    for deal in DEALS:
        game.reset_deal([deal])
        opponent_card = game.card_names[deal[1]]
        assert f"Your card: {game.card_names[deal[0]]}" in game.observation(0)
        assert opponent_card not in game.observation(0)
        game.apply_action("bet")
        game.apply_action("fold")
        assert opponent_card not in game.observation(0)  # a fold shows no cards


def test_multi_hand_games_sum_chips_and_alternate_the_first_player():
    game = KuhnPoker(hands=3)
    game.reset_deal([(2, 1), (0, 1), (1, 0)])
    for move in ["bet", "call"]:  # hand 1: seat 0 opens and wins 2 at showdown
        game.apply_action(move)
    assert game.current_player() == 1  # hand 2 opens with seat 1
    game.apply_action("bet")
    game.apply_action("fold")  # seat 0 folds: seat 1 +1
    assert "your K vs opponent's Q" in game.observation(0)
    game.apply_action("check")
    game.apply_action("check")  # Q beats J: seat 0 +1
    assert game.is_terminal()
    assert game.returns() == [2.0, -2.0]
    win_loss = KuhnPoker(hands=3, win_loss=True)
    win_loss.reset_deal([(2, 1), (0, 1), (1, 0)])
    for move in ["bet", "call", "bet", "fold", "check", "check"]:
        win_loss.apply_action(move)
    assert win_loss.returns() == [1.0, -1.0]


def test_five_card_deck_and_bad_options():
    game = make_game("kuhn_poker", {"deck_size": 5})
    assert game.card_names == "9TJQK"
    for seed in range(50):
        game.reset(seed)
        assert all(game.card_names[i] in "9TJQK" for i in range(5))
    with pytest.raises(ValueError, match="deck_size"):
        make_game("kuhn_poker", {"deck_size": 2})
    with pytest.raises(ValueError, match="hands"):
        KuhnPoker(hands=0)
    with pytest.raises(ValueError, match="distinct"):
        KuhnPoker().reset_deal([(1, 1)])


def test_illegal_moves_and_tolerant_parsing():
    game = KuhnPoker()
    game.reset(0)
    with pytest.raises(IllegalMoveError):
        game.apply_action("call")
    assert game.parse_action("I think... \\boxed{[Bet]}") == "bet"
    assert game.parse_action("\\boxed{fold}") is None
