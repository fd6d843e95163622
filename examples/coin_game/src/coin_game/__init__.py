"""An example spiral game plugin: both players call a hidden, seeded coin; the only correct caller wins.

It exists to show the plugin mechanics (entry point + `check_game` test), not to be a good game.
"""

from __future__ import annotations

import random

from spiral.games import Game, IllegalMoveError


class CoinGame(Game):
    name = "coin_game"
    description = (
        "Coin Game. A coin is flipped but not shown. Player 0 calls [heads] or [tails], then Player 1 calls "
        "(seeing Player 0's call). If exactly one player called the coin correctly, that player wins; "
        "otherwise it is a draw."
    )
    max_turns = 2

    def __init__(self, bias: float = 0.5) -> None:
        if not 0.0 <= bias <= 1.0:
            raise ValueError(f"coin_game: bias must be in [0, 1], got {bias}")
        self.bias = bias  # probability of heads
        self.reset(0)

    def reset(self, seed: int) -> None:
        self._coin = "heads" if random.Random(seed).random() < self.bias else "tails"
        self._calls: list[str] = []

    def current_player(self) -> int:
        return len(self._calls)

    def observation(self, player: int) -> str:
        lines = [f"You are Player {player}."]
        if self._calls:
            lines.append(f"Player 0 called {self._calls[0]}.")
        if self.is_terminal():
            lines.append(f"The coin was {self._coin}.")
        return "\n".join(lines)

    def legal_actions(self) -> list[str]:
        return [] if self.is_terminal() else ["heads", "tails"]

    def apply_action(self, action: str) -> None:
        if action not in self.legal_actions():
            raise IllegalMoveError(f"{action!r} is not heads or tails")
        self._calls.append(action)

    def is_terminal(self) -> bool:
        return len(self._calls) == 2

    def returns(self) -> list[float]:
        if not self.is_terminal():
            return [0.0, 0.0]
        right = [call == self._coin for call in self._calls]
        if right[0] == right[1]:
            return [0.0, 0.0]
        return [1.0, -1.0] if right[0] else [-1.0, 1.0]
