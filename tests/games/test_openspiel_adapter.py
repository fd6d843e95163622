"""The `openspiel:<game>` adapter: conformance on every documented game, parity with native Kuhn Poker, refusals."""

from __future__ import annotations

import itertools

import pytest

from spiral.games import GameNotFound, check_game, make_game, resolve_game
from spiral.games.kuhn_poker import KuhnPoker

DOCUMENTED = ["kuhn_poker", "leduc_poker", "liars_dice", "tic_tac_toe", "connect_four"]
SEQUENCES = [["check", "check"], ["check", "bet", "call"], ["check", "bet", "fold"], ["bet", "call"], ["bet", "fold"]]


@pytest.mark.parametrize("name", DOCUMENTED)
def test_documented_games_pass_check_game(name):
    check_game(resolve_game(f"openspiel:{name}"), games=30)


def test_generic_renderer_game_passes_check_game():
    check_game(resolve_game("openspiel:breakthrough"), games=2, params={"rows": 4, "columns": 4})


def test_small_liars_dice_variant_passes_check_game():
    check_game(resolve_game("openspiel:liars_dice"), games=30, params={"dice_sides": 3})


@pytest.mark.parametrize(("deal", "moves"), list(itertools.product(itertools.permutations(range(3), 2), SEQUENCES)))
def test_kuhn_adapter_matches_native_kuhn(deal, moves):
    native = KuhnPoker()
    native.reset_deal([deal])
    adapter = make_game("openspiel:kuhn_poker")
    adapter.reset_history(list(deal))  # OpenSpiel deals seat 0's card, then seat 1's
    for move in moves:
        assert adapter.current_player() == native.current_player()
        assert sorted(adapter.legal_actions()) == sorted(native.legal_actions())
        for seat in (0, 1):
            assert adapter.information_state(seat) == native.information_state(seat)
        native.apply_action(move)
        adapter.apply_action(move)
    assert adapter.is_terminal() and native.is_terminal()
    assert adapter.returns() == native.returns()


def test_seeded_deals_cover_every_kuhn_deal():
    game = make_game("openspiel:kuhn_poker")
    deals = set()
    for seed in range(60):
        game.reset(seed)
        deals.add((game.information_state(0)[0], game.information_state(1)[0]))
    assert len(deals) == 6


@pytest.mark.parametrize(("name", "reason"), [
    ("goofspiel", "simultaneous-move"),
    ("oshi_zumo", "simultaneous-move"),
])
def test_simultaneous_games_are_refused(name, reason):
    with pytest.raises(ValueError, match=reason):
        make_game(f"openspiel:{name}")


def test_more_than_two_players_is_refused():
    with pytest.raises(ValueError, match="3 players; spiral games have exactly two seats"):
        make_game("openspiel:kuhn_poker", {"players": 3})


def test_general_sum_game_is_refused():
    with pytest.raises(ValueError, match="general_sum"):
        make_game("openspiel:bargaining")


def test_unknown_game_suggests_a_name():
    with pytest.raises(GameNotFound, match="openspiel:leduc_poker"):
        resolve_game("openspiel:leduc_pokr")


def test_leduc_prose_shows_the_public_card_only_after_round_one():
    game = make_game("openspiel:leduc_poker")
    game.reset_history([0, 3])  # seat 0 holds a J, seat 1 a Q
    first = game.observation(0)
    assert "Your private card: J" in first and "Public card" not in first and "Legal moves: [call], [raise]" in first
    game.apply_action("call")
    game.apply_action("call")
    assert "Public card:" in game.observation(1) and "Round 1 actions: Opponent: call, You: call." in game.observation(1)
