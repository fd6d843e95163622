"""Tic-Tac-Toe rules: wins in every direction, draws, the 5×5 four-in-a-row variant, move parsing."""

from __future__ import annotations

import pytest

from spiral.games import IllegalMoveError, make_game


def _play(moves, **params):
    game = make_game("tic_tac_toe", params)
    game.reset(0)
    for move in moves:
        game.apply_action(str(move))
    return game


@pytest.mark.parametrize(
    "moves, winner",
    [
        ([0, 3, 1, 4, 2], 0),  # top row
        ([0, 1, 3, 2, 6], 0),  # left column
        ([1, 0, 2, 4, 3, 8], 1),  # O on the main diagonal
        ([0, 2, 1, 4, 3, 6], 1),  # O on the anti-diagonal
    ],
)
def test_lines_win(moves, winner):
    game = _play(moves)
    assert game.is_terminal() and game.winner() == winner
    assert game.returns() == ([1.0, -1.0] if winner == 0 else [-1.0, 1.0])
    assert game.legal_actions() == []


def test_full_board_without_a_line_is_a_draw():
    game = _play([0, 1, 2, 4, 3, 5, 7, 6, 8])
    assert game.is_terminal() and game.winner() is None and game.returns() == [0.0, 0.0]
    assert "draw" in game.observation(0)


def test_five_by_five_needs_four_in_a_row():
    moves = [0, 24, 1, 23, 2, 22]
    game = _play(moves, size=5, win_length=4)
    assert not game.is_terminal()  # three in a row is not enough
    game.apply_action("3")
    assert game.winner() == 0
    diagonal = _play([4, 0, 8, 1, 12, 2, 16], size=5, win_length=4)  # anti-diagonal 4-8-12-16
    assert diagonal.winner() == 0


def test_occupied_cells_are_illegal_and_moves_parse_tolerantly():
    game = _play([4])
    with pytest.raises(IllegalMoveError):
        game.apply_action("4")
    with pytest.raises(IllegalMoveError):
        game.apply_action("9")
    assert game.parse_action("I take the corner \\boxed{[0]}") == "0"
    assert game.parse_action("\\boxed{ 8 }.") == "8"
    assert game.parse_action("\\boxed{4}") is None
    assert "X" in game.observation(1) and "Legal moves" in game.observation(1)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="win_length"):
        make_game("tic_tac_toe", {"size": 3, "win_length": 4})
