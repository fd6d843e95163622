"""Simple Negotiation: two traders with private valuations swap resources through offers.

Offers are checked by parsing them against the inventories, so any well-formed offer a seat can pay
for is legal; `legal_actions` only lists a few example offers (plus [Accept]/[Deny] when one is pending).
"""

from __future__ import annotations

import random
import re

from spiral.games.base import Game, IllegalMoveError
from spiral.games.parsing import normalize_move
from spiral.games.registry import register_game
from spiral.text import last_boxed

RESOURCE_NAMES = ("Wood", "Wheat", "Sheep", "Brick", "Ore", "Gold", "Stone", "Clay")
_ARROW = re.compile(r"\s*(?:->|→|=>|in exchange for)\s*")
_ITEM = re.compile(r"(\d{1,6})\s*x?\s*([a-z]+)")  # at most 6 digits: int() of huge digit strings is slow
_SPLIT = re.compile(r"\s*(?:,|\+|\band\b|&)\s*")

Bundle = tuple[int, ...]  # quantity per resource kind


@register_game
class SimpleNegotiation(Game):
    """Each seat holds resources and values them privately; whoever's holdings gain more value wins (+1/-1/0)."""

    name = "simple_negotiation"
    description = (
        "Simple Negotiation. Both players hold resources (quantities are public) and value each kind "
        "differently (you only know your own values). On your turn make an offer, e.g. "
        "[Offer: I give 2 Wood, 1 Ore -> you give 3 Sheep], or answer a pending offer with [Accept] or "
        "[Deny]. Making a new offer declines the pending one. You can only offer what you hold and ask "
        "for what the other player holds. After the turn limit, the player whose inventory value rose "
        "more (by their own values) wins."
    )

    def __init__(self, resources: int = 5, max_turns: int = 10) -> None:
        if not 2 <= resources <= len(RESOURCE_NAMES):
            raise ValueError(f"simple_negotiation: resources must be in 2..{len(RESOURCE_NAMES)}, got {resources}")
        if not 2 <= max_turns <= 200:
            raise ValueError(f"simple_negotiation: max_turns must be in 2..200, got {max_turns}")
        self.resources = RESOURCE_NAMES[:resources]
        self.max_turns = max_turns
        self.reset(0)

    def reset(self, seed: int) -> None:
        rng = random.Random(seed)
        n = len(self.resources)
        self._inventory = [[rng.randint(1, 5) for _ in range(n)] for _ in range(2)]
        self._start = [list(inv) for inv in self._inventory]
        base = [rng.randint(5, 40) for _ in range(n)]
        self._values = [[max(1, round(b * rng.uniform(0.8, 1.2))) for b in base] for _ in range(2)]
        self._turn = 0
        self._pending: tuple[Bundle, Bundle] | None = None  # (proposer gives, proposer gets)
        self._log: list[tuple[int, str]] = []

    # -- offers ------------------------------------------------------------------------------

    def format_offer(self, give: Bundle, get: Bundle) -> str:
        """The canonical move string for an offer by the seat to move."""

        def side(bundle: Bundle) -> str:
            return ", ".join(f"{q} {r}" for q, r in zip(bundle, self.resources) if q) or "nothing"

        return f"Offer: I give {side(give)} -> you give {side(get)}"

    def _parse_bundle(self, text: str) -> Bundle | None:
        text = re.sub(r"^(?:i|you)\s+(?:give|get|offer|receive)\s*:?\s*", "", text.strip())
        quantities = [0] * len(self.resources)
        if text in ("", "nothing"):
            return tuple(quantities)
        names = [r.lower() for r in self.resources]
        for item in _SPLIT.split(text):
            m = _ITEM.fullmatch(item)
            if m is None:
                return None
            name = m.group(2)
            if name not in names and name.endswith("s") and name[:-1] in names:
                name = name[:-1]
            if name not in names:
                return None
            quantities[names.index(name)] += int(m.group(1))
        return tuple(quantities)

    def _read(self, move: str) -> str | tuple[Bundle, Bundle] | None:
        """A loosely written move as "accept", "deny" or (give, get) when it is legal now, else None."""
        if self.is_terminal():
            return None
        text = normalize_move(move)
        if text in ("accept", "deny"):
            return text if self._pending is not None else None
        m = re.fullmatch(r"offer\s*:?\s*(.*)", text, flags=re.DOTALL)
        sides = _ARROW.split(m.group(1)) if m else []
        if len(sides) != 2:
            return None
        give, get = (self._parse_bundle(s) for s in sides)
        if give is None or get is None or not any(give) and not any(get):
            return None
        me = self.current_player()
        if any(q > have for q, have in zip(give, self._inventory[me])):
            return None
        if any(q > have for q, have in zip(get, self._inventory[1 - me])):
            return None
        return give, get

    def _format(self, read: str | tuple[Bundle, Bundle]) -> str:
        return read.capitalize() if isinstance(read, str) else self.format_offer(*read)

    def parse_action(self, text: str) -> str | None:
        content = last_boxed(text)
        read = None if content is None else self._read(content)
        return None if read is None else self._format(read)

    # -- state -------------------------------------------------------------------------------

    def current_player(self) -> int:
        return self._turn % 2

    def is_terminal(self) -> bool:
        return self._turn >= self.max_turns

    def legal_actions(self) -> list[str]:
        """Examples: every one-for-one swap the seat can make, and [Accept]/[Deny] when an offer is pending."""
        if self.is_terminal():
            return []
        me, n = self.current_player(), len(self.resources)
        unit = lambda i: tuple(int(j == i) for j in range(n))  # noqa: E731
        nothing = (0,) * n
        offers = [
            self.format_offer(unit(i), unit(j))
            for i in range(n)
            for j in range(n)
            if i != j and self._inventory[me][i] and self._inventory[1 - me][j]
        ]
        if not offers:  # one seat holds a single kind only: a gift or a request is still possible
            offers = [self.format_offer(unit(i), nothing) for i in range(n) if self._inventory[me][i]]
            offers += [self.format_offer(nothing, unit(j)) for j in range(n) if self._inventory[1 - me][j]]
        return (["Accept", "Deny"] if self._pending is not None else []) + offers

    def apply_action(self, action: str) -> None:
        read = self._read(action)
        if read is None:
            raise IllegalMoveError(f"{action[:200]!r} is not a valid move here")
        me = self.current_player()
        if read == "accept":
            assert self._pending is not None  # "accept" reads as legal only with an offer on the table
            give, get = self._pending
            for i in range(len(self.resources)):  # the proposer is the other seat
                self._inventory[1 - me][i] += get[i] - give[i]
                self._inventory[me][i] += give[i] - get[i]
            self._pending = None
        elif read == "deny":
            self._pending = None
        else:
            assert not isinstance(read, str)
            self._pending = read
        self._log.append((me, self._format(read)))
        self._turn += 1

    def gains(self) -> list[int]:
        """Value gained by each seat so far, by its own valuation."""
        return [
            sum(v * (now - then) for v, now, then in zip(self._values[p], self._inventory[p], self._start[p]))
            for p in range(2)
        ]

    def returns(self) -> list[float]:
        if not self.is_terminal():
            return [0.0, 0.0]
        a, b = self.gains()
        return [1.0, -1.0] if a > b else [-1.0, 1.0] if b > a else [0.0, 0.0]

    def observation(self, player: int) -> str:
        def inventory(p: int, values: bool) -> str:
            return ", ".join(
                f"{q} {r}" + (f" (worth {v} each to you)" if values else "")
                for q, r, v in zip(self._inventory[p], self.resources, self._values[p])
            )

        lines = [
            f"You are Player {player}. Turn {min(self._turn + 1, self.max_turns)} of {self.max_turns}.",
            f"Your inventory: {inventory(player, True)}.",
            f"Opponent's inventory: {inventory(1 - player, False)}.",
            f"Your value gained so far: {self.gains()[player]:+d}.",
        ]
        for seat, move in self._log:
            lines.append(f"{'You' if seat == player else 'Opponent'}: [{move}]")
        if self.is_terminal():
            lines.append("Game over.")
        elif self.current_player() == player:
            if self._pending is not None:
                lines.append("The opponent's offer is pending: answer [Accept] or [Deny], or make a counter-offer.")
            lines.append("Moves: [Offer: I give <quantity> <resource>, ... -> you give <quantity> <resource>, ...]"
                         + (", [Accept], [Deny]" if self._pending is not None else ""))
        return "\n".join(lines)
