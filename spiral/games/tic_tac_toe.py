"""Tic-Tac-Toe on an n×n board with k in a row to win (3×3/3 by default; the paper also uses 5×5/4).

Moves are cell numbers ("0" top-left, row by row); the game has no chance, so `reset`'s seed is unused.
"""

from __future__ import annotations

from spiral.games.base import Game, IllegalMoveError
from spiral.games.registry import register_game

EMPTY = -1
_MARKS = "XO"


@register_game
class TicTacToe(Game):
    """Player 0 is X and moves first; returns are +1 / -1 for a win / loss and 0 for a full board."""

    name = "tic_tac_toe"
    _rules = (
        "Tic-Tac-Toe on a {n}x{n} board. Player 0 is X and moves first, Player 1 is O. Players take turns "
        "marking an empty cell; cells are numbered 0 to {last}, left to right, top to bottom. The first "
        "to get {k} marks in a row (horizontally, vertically or diagonally) wins; a full board is a draw. "
        "Answer with the cell number, e.g. [4]."
    )
    description = _rules.format(n=3, last=8, k=3)

    def __init__(self, size: int = 3, win_length: int | None = None) -> None:
        win_length = size if win_length is None else win_length
        if not 3 <= size <= 9:
            raise ValueError(f"tic_tac_toe: size must be in 3..9, got {size}")
        if not 3 <= win_length <= size:
            raise ValueError(f"tic_tac_toe: win_length must be in 3..size ({size}), got {win_length}")
        self.size = size
        self.win_length = win_length
        self.max_turns = size * size
        self.description = self._rules.format(n=size, last=size * size - 1, k=win_length)
        self._lines = self._winning_lines()
        self.reset(0)

    def _winning_lines(self) -> list[tuple[int, ...]]:
        n, k = self.size, self.win_length
        lines = []
        for r in range(n):
            for c in range(n):
                for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                    end_r, end_c = r + dr * (k - 1), c + dc * (k - 1)
                    if 0 <= end_r < n and 0 <= end_c < n:
                        lines.append(tuple((r + dr * i) * n + c + dc * i for i in range(k)))
        return lines

    def reset(self, seed: int) -> None:
        self._board = [EMPTY] * (self.size * self.size)
        self._moves = 0
        self._winner: int | None = None

    def board(self) -> tuple[int, ...]:
        """Cells row by row: 0 (X), 1 (O) or `EMPTY` (-1)."""
        return tuple(self._board)

    def winner(self) -> int | None:
        return self._winner

    def current_player(self) -> int:
        return self._moves % 2

    def is_terminal(self) -> bool:
        return self._winner is not None or self._moves == len(self._board)

    def legal_actions(self) -> list[str]:
        if self.is_terminal():
            return []
        return [str(i) for i, cell in enumerate(self._board) if cell == EMPTY]

    def apply_action(self, action: str) -> None:
        if action not in self.legal_actions():
            raise IllegalMoveError(f"{action!r} is not an empty cell; legal: {self.legal_actions()}")
        player = self.current_player()
        self._board[int(action)] = player
        self._moves += 1
        if any(all(self._board[i] == player for i in line) for line in self._lines if int(action) in line):
            self._winner = player

    def returns(self) -> list[float]:
        if self._winner is None:
            return [0.0, 0.0]
        return [1.0, -1.0] if self._winner == 0 else [-1.0, 1.0]

    def render(self) -> str:
        """The board with marks, and cell numbers on the empty cells."""
        width = len(str(len(self._board) - 1))
        rows = []
        for r in range(self.size):
            cells = self._board[r * self.size : (r + 1) * self.size]
            rows.append(" | ".join(
                (_MARKS[v] if v != EMPTY else str(r * self.size + c)).rjust(width) for c, v in enumerate(cells)
            ))
        return "\n".join(rows)

    def observation(self, player: int) -> str:
        lines = [f"You are Player {player} ({_MARKS[player]}).", "Board:", self.render()]
        if self.is_terminal():
            result = "a draw" if self._winner is None else ("a win for you" if self._winner == player else "a loss for you")
            lines.append(f"Game over: {result}.")
        elif self.current_player() == player:
            lines.append("Legal moves: " + ", ".join(f"[{a}]" for a in self.legal_actions()))
        return "\n".join(lines)
