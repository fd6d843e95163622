"""Liar's Dice for two players (no wild faces): bid on the dice under both cups or call the last bid a lie.

An out-of-domain evaluation game; each seat sees only its own dice, rolled from the `reset` seed.
"""

from __future__ import annotations

import random
import re

from spiral.games.base import Game, IllegalMoveError
from spiral.games.parsing import normalize_move
from spiral.games.registry import register_game
from spiral.text import last_boxed

_BID = re.compile(r"(?:bid\s*:?\s*)?(\d{1,3})\s*(?:x|×|\*|dice of|of)?\s*(\d{1,2})s?")


@register_game
class LiarsDice(Game):
    """Bids rise strictly (more dice, or as many dice of a higher face); calling decides the game (+1/-1)."""

    name = "liars_dice"
    _rules = (
        "Liar's Dice. Each player rolls {dice} private {faces}-sided dice. Players alternate; a bid "
        "[Bid: Q F] claims that at least Q of all {total} dice show face F. Each bid must raise the "
        "previous one: a higher quantity, or the same quantity with a higher face. Instead of bidding "
        "you may call [Liar] on the previous bid: the dice are shown; if the bid holds the bidder wins, "
        "otherwise the caller wins. There are no wild faces."
    )
    description = _rules.format(dice=2, faces=6, total=4)

    def __init__(self, dice: int = 2, faces: int = 6) -> None:
        if not 1 <= dice <= 5:
            raise ValueError(f"liars_dice: dice must be in 1..5, got {dice}")
        if not 2 <= faces <= 9:
            raise ValueError(f"liars_dice: faces must be in 2..9, got {faces}")
        self.dice = dice
        self.faces = faces
        self.max_turns = 2 * dice * faces + 1  # every bid raises, then one call
        self.description = self._rules.format(dice=dice, faces=faces, total=2 * dice)
        self.reset(0)

    def reset(self, seed: int) -> None:
        rng = random.Random(seed)
        self._cups = [sorted(rng.randint(1, self.faces) for _ in range(self.dice)) for _ in range(2)]
        self._bids: list[tuple[int, int]] = []
        self._caller: int | None = None

    def _bid_index(self, quantity: int, face: int) -> int:
        return (quantity - 1) * self.faces + (face - 1)  # bids are ordered by this index

    def current_player(self) -> int:
        return len(self._bids) % 2

    def is_terminal(self) -> bool:
        return self._caller is not None

    def legal_actions(self) -> list[str]:
        if self.is_terminal():
            return []
        start = self._bid_index(*self._bids[-1]) + 1 if self._bids else 0
        bids = [f"Bid: {i // self.faces + 1} {i % self.faces + 1}" for i in range(start, 2 * self.dice * self.faces)]
        return (["Liar"] if self._bids else []) + bids

    def parse_action(self, text: str) -> str | None:
        content = last_boxed(text)
        if content is None:
            return None
        move = normalize_move(content)
        if move in ("liar", "call", "call liar"):
            move = "Liar"
        else:
            m = _BID.fullmatch(move)
            move = f"Bid: {int(m.group(1))} {int(m.group(2))}" if m else ""
        return move if move in self.legal_actions() else None

    def apply_action(self, action: str) -> None:
        if action not in self.legal_actions():
            raise IllegalMoveError(f"{action[:200]!r} is not legal here; see the legal moves")
        if action == "Liar":
            self._caller = self.current_player()
        else:
            quantity, face = (int(x) for x in action[len("Bid: ") :].split())
            self._bids.append((quantity, face))

    def returns(self) -> list[float]:
        if not self.is_terminal():
            return [0.0, 0.0]
        quantity, face = self._bids[-1]
        assert self._caller is not None  # a finished game ended with a call
        bid_holds = sum(cup.count(face) for cup in self._cups) >= quantity
        winner = 1 - self._caller if bid_holds else self._caller
        return [1.0, -1.0] if winner == 0 else [-1.0, 1.0]

    def observation(self, player: int) -> str:
        lines = [f"You are Player {player}. Your dice: {' '.join(map(str, self._cups[player]))}."]
        for i, (quantity, face) in enumerate(self._bids):
            lines.append(f"{'You' if i % 2 == player else 'Opponent'} bid: {quantity} x {face}")
        if self.is_terminal():
            lines.append(
                f"{'You' if self._caller == player else 'Opponent'} called Liar. Opponent's dice: "
                f"{' '.join(map(str, self._cups[1 - player]))}. {'You win' if self.returns()[player] > 0 else 'You lose'}."
            )
        elif self.current_player() == player:
            legal = self.legal_actions()
            shown = [f"[{a}]" for a in legal[:8]] + (["..."] if len(legal) > 8 else [])
            lines.append("Legal moves: " + ", ".join(shown))
        return "\n".join(lines)
