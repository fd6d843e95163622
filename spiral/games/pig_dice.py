"""Pig, the dice game: roll to build a turn total or hold to bank it (an out-of-domain evaluation game).

Dice come from a generator seeded by `reset`, so a seed plus a move sequence replays exactly.
"""

from __future__ import annotations

import random

from spiral.games.base import Game, IllegalMoveError
from spiral.games.registry import register_game


@register_game
class PigDice(Game):
    """First to bank `target` points wins (+1/-1); at the move limit the higher banked score wins, ties draw."""

    name = "pig_dice"
    _rules = (
        "Pig. On your turn you [roll] a six-sided die or [hold]. A roll of 2-6 adds to your turn total and "
        "you go on; a 1 loses the turn total and ends your turn. Holding banks the turn total into your "
        "score and ends your turn. The first player to bank {target} points wins. After {limit} moves "
        "the higher banked score wins."
    )
    description = _rules.format(target=30, limit=100)

    def __init__(self, target: int = 30, max_turns: int = 100) -> None:
        if not 1 <= target <= 1000:
            raise ValueError(f"pig_dice: target must be in 1..1000, got {target}")
        if not 2 <= max_turns <= 10_000:
            raise ValueError(f"pig_dice: max_turns must be in 2..10000, got {max_turns}")
        self.target = target
        self.max_turns = max_turns
        self.description = self._rules.format(target=target, limit=max_turns)
        self.reset(0)

    def reset(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._scores = [0, 0]
        self._turn_total = 0
        self._player = 0
        self._moves = 0
        self._last = "The game has just started."

    def current_player(self) -> int:
        return self._player

    def is_terminal(self) -> bool:
        return max(self._scores) >= self.target or self._moves >= self.max_turns

    def legal_actions(self) -> list[str]:
        return [] if self.is_terminal() else ["roll", "hold"]

    def apply_action(self, action: str) -> None:
        if action not in self.legal_actions():
            raise IllegalMoveError(f"{action!r} is not legal; legal: {self.legal_actions()}")
        me = self._player
        if action == "roll":
            die = self._rng.randint(1, 6)
            if die == 1:
                self._last = f"Player {me} rolled 1 and lost a turn total of {self._turn_total}."
                self._turn_total = 0
                self._player = 1 - me
            else:
                self._turn_total += die
                self._last = f"Player {me} rolled {die}; turn total {self._turn_total}."
        else:
            self._scores[me] += self._turn_total
            self._last = f"Player {me} held and banked {self._turn_total}."
            self._turn_total = 0
            self._player = 1 - me
        self._moves += 1

    def returns(self) -> list[float]:
        if not self.is_terminal() or self._scores[0] == self._scores[1]:
            return [0.0, 0.0]
        return [1.0, -1.0] if self._scores[0] > self._scores[1] else [-1.0, 1.0]

    def observation(self, player: int) -> str:
        lines = [
            f"You are Player {player}. Target: {self.target}. Move {self._moves} of at most {self.max_turns}.",
            f"Your score: {self._scores[player]}. Opponent's score: {self._scores[1 - player]}.",
            self._last,
        ]
        if self.is_terminal():
            lines.append("Game over.")
        elif self._player == player:
            lines.append(f"Your turn total: {self._turn_total}. Legal moves: [roll], [hold]")
        return "\n".join(lines)
