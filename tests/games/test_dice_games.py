"""Pig and Liar's Dice: seeded dice, scoring and the bid ladder."""

from __future__ import annotations

import pytest

from spiral.games import IllegalMoveError, make_game
from spiral.games.liars_dice import LiarsDice
from spiral.games.pig_dice import PigDice


def test_pig_rolls_replay_from_the_seed_and_holding_banks():
    a, b = PigDice(), PigDice()
    a.reset(11)
    b.reset(11)
    for _ in range(3):
        if a.is_terminal() or a.current_player() != 0:
            break
        a.apply_action("roll")
        b.apply_action("roll")
        assert a.observation(0) == b.observation(0)
    game = PigDice(target=5)
    for seed in range(100):  # find a seed whose first roll is not a 1, then hold it
        game.reset(seed)
        game.apply_action("roll")
        if game.current_player() == 0:
            break
    total = int(game.observation(0).split("Your turn total: ")[1].split(".")[0])
    game.apply_action("hold")
    assert f"Your score: {total}." in game.observation(0) and game.current_player() == 1
    assert game.is_terminal() == (total >= 5)


def test_pig_ends_at_the_move_limit_with_the_higher_score_winning():
    game = PigDice(target=1000, max_turns=6)
    game.reset(0)
    while not game.is_terminal():
        game.apply_action("hold" if game.current_player() == 1 else "roll")
    assert game.returns() in ([1.0, -1.0], [0.0, 0.0])  # seat 1 never banks anything
    with pytest.raises(IllegalMoveError):
        game.apply_action("roll")


def test_liars_dice_bids_must_rise_and_liar_settles_against_the_dice():
    game = LiarsDice(dice=2, faces=6)
    game.reset(5)
    assert "Liar" not in game.legal_actions() and len(game.legal_actions()) == 24
    game.apply_action("Bid: 2 3")
    assert "Bid: 2 3" not in game.legal_actions() and "Bid: 2 2" not in game.legal_actions()
    assert game.parse_action("\\boxed{bid 3 x 1}") == "Bid: 3 1"
    assert game.parse_action("\\boxed{[liar]}") == "Liar"
    assert game.parse_action("\\boxed{Bid: 1 6}") is None  # lower than 2 x 3
    with pytest.raises(IllegalMoveError):
        game.apply_action("Bid: 1 6")
    game.apply_action("Liar")
    own = game.observation(0).split("Your dice: ")[1].split(".")[0].split()
    other = game.observation(1).split("Your dice: ")[1].split(".")[0].split()
    bid_holds = (own + other).count("3") >= 2
    assert game.returns() == ([1.0, -1.0] if bid_holds else [-1.0, 1.0])  # seat 0 bid, seat 1 called


def test_liars_dice_hides_the_other_cup_until_the_call():
    game = make_game("liars_dice", {"dice": 3})
    for seed in range(20):
        game.reset(seed)
        assert "Opponent's dice" not in game.observation(0)
        game.apply_action("Bid: 1 1")
        game.apply_action("Liar")
        assert "Opponent's dice" in game.observation(0)
