"""Standard Kuhn Poker (ante 1, bet 1, chips really added to the pot), optionally several hands per game.

Pure game logic; information-state keys match OpenSpiel's `kuhn_poker` so evaluators can map policies.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from spiral.games.base import Game, IllegalMoveError
from spiral.games.registry import register_game

_RANKS = "23456789TJQK"  # deck_size n uses the top n ranks, so the 3-card deck is J < Q < K
# OpenSpiel history letters: "p" (pass) for check/fold, "b" (bet) for bet/call.
_ONE_HAND = "The game is one hand; you win or lose the chips in the pot."
_LETTER = {"check": "p", "fold": "p", "bet": "b", "call": "b"}


@register_game
class KuhnPoker(Game):
    """Two seats, one private card each from a deck of `deck_size` ranks; one betting round per hand.

    Each hand both seats ante 1. The first actor checks or bets 1; facing a bet a seat calls (adds 1)
    or folds. Check-check, bet-call and check-bet-call go to showdown: the higher card takes the pot.
    Hand h (0-based) is opened by seat h % 2. Returns are net chips won over all hands (zero-sum);
    with `win_loss=True` they are +1/-1/0 by the sign of the chip difference.
    """

    name = "kuhn_poker"
    _rules = (
        "Kuhn Poker. The deck has {deck} cards ranked {ranks} (left is lowest). Each hand, both players "
        "ante 1 chip and get one private card. The first player may [check] or [bet] 1 chip. If a player "
        "bets, the other may [call] (add 1 chip) or [fold] (give up the pot). After check-check or a "
        "call, the higher card wins the pot. {hands_rule}"
    )
    description = _rules.format(deck=3, ranks="J < Q < K", hands_rule=_ONE_HAND)

    def __init__(self, hands: int = 1, deck_size: int = 3, win_loss: bool = False) -> None:
        if not 1 <= hands <= 100:
            raise ValueError(f"kuhn_poker: hands must be in 1..100, got {hands}")
        if not 3 <= deck_size <= len(_RANKS):
            raise ValueError(f"kuhn_poker: deck_size must be in 3..{len(_RANKS)}, got {deck_size}")
        self.hands = hands
        self.deck_size = deck_size
        self.win_loss = win_loss
        self.max_turns = 3 * hands
        self.card_names = _RANKS[len(_RANKS) - deck_size :]
        hands_rule = (
            _ONE_HAND
            if hands == 1
            else f"The game is {hands} hands; the players take turns acting first, and the player with more chips at the end "
            "wins."
        )
        self.description = self._rules.format(
            deck=deck_size, ranks=" < ".join(self.card_names), hands_rule=hands_rule
        )
        self.reset(0)

    # -- setup -------------------------------------------------------------------------------

    def reset(self, seed: int) -> None:
        rng = random.Random(seed)
        deals = (rng.sample(range(self.deck_size), 2) for _ in range(self.hands))
        self.reset_deal([(first, second) for first, second in deals])

    def reset_deal(self, deals: Sequence[tuple[int, int]]) -> None:
        """Start a game with fixed cards: `deals[h] = (card of seat 0, card of seat 1)` for each hand."""
        if len(deals) != self.hands or any(
            len(d) != 2 or d[0] == d[1] or not all(0 <= c < self.deck_size for c in d) for d in deals
        ):
            raise ValueError(f"need {self.hands} deals of two distinct cards in 0..{self.deck_size - 1}, got {deals!r}")
        self._deals = [tuple(d) for d in deals]
        self._hand = 0
        self._history: list[str] = []  # actions in the current hand
        self._past: list[tuple[list[str], list[int] | None, list[int]]] = []  # (actions, shown cards, chip change)
        self._chips = [0, 0]

    # -- state -------------------------------------------------------------------------------

    def _first(self) -> int:
        return self._hand % 2

    def current_player(self) -> int:
        return (self._first() + len(self._history)) % 2

    def is_terminal(self) -> bool:
        return self._hand >= self.hands

    def legal_actions(self) -> list[str]:
        if self.is_terminal():
            return []
        return ["call", "fold"] if self._history[-1:] == ["bet"] else ["check", "bet"]

    def apply_action(self, action: str) -> None:
        if action not in self.legal_actions():
            raise IllegalMoveError(f"{action!r} is not legal here; legal: {self.legal_actions()}")
        self._history.append(action)
        h = self._history
        if h in (["check", "check"], ["bet", "call"], ["check", "bet", "call"]):
            self._end_hand(winner=None)
        elif h[-1] == "fold":
            self._end_hand(winner=self.current_player())  # the seat after the folder, i.e. the bettor

    def _end_hand(self, winner: int | None) -> None:
        """Settle the pot; `winner` is None for a showdown (the higher card wins)."""
        cards = self._deals[self._hand]
        stake = 1 + ("call" in self._history)  # chips each seat put in
        shown = None
        if winner is None:
            shown = list(cards)
            winner = 0 if cards[0] > cards[1] else 1
        change = [stake, -stake] if winner == 0 else [-stake, stake]
        self._chips = [c + d for c, d in zip(self._chips, change)]
        self._past.append((self._history, shown, change))
        self._history = []
        self._hand += 1

    def returns(self) -> list[float]:
        if not self.is_terminal():
            return [0.0, 0.0]
        if self.win_loss:
            diff = self._chips[0] - self._chips[1]
            sign = (diff > 0) - (diff < 0)
            return [float(sign), float(-sign)]
        return [float(c) for c in self._chips]

    # -- what a seat sees ----------------------------------------------------------------------

    def _seat_actions(self, actions: list[str], first: int, player: int) -> str:
        who = lambda i: "You" if (first + i) % 2 == player else "Opponent"  # noqa: E731
        return ", ".join(f"{who(i)}: {a}" for i, a in enumerate(actions)) or "none yet"

    def observation(self, player: int) -> str:
        lines = [f"You are Player {player}."]
        for h, (actions, shown, change) in enumerate(self._past):
            line = f"Hand {h + 1}: {self._seat_actions(actions, h % 2, player)}."
            if shown is not None:
                line += f" Showdown: your {self.card_names[shown[player]]} vs opponent's {self.card_names[shown[1 - player]]}."
            lines.append(line + f" You {'won' if change[player] > 0 else 'lost'} {abs(change[player])}.")
        if self.is_terminal():
            lines.append(f"Game over. Your net chips: {self._chips[player]:+d}.")
            return "\n".join(lines)
        pot = 2 + self._history.count("bet") + self._history.count("call")
        lines += [
            f"Hand {self._hand + 1} of {self.hands}. Your card: {self.card_names[self._deals[self._hand][player]]}.",
            f"Actions this hand: {self._seat_actions(self._history, self._first(), player)}. Pot: {pot} chips.",
        ]
        if self.hands > 1:
            lines.append(f"Your net chips so far: {self._chips[player]:+d}.")
        if self.current_player() == player:
            lines.append("Legal moves: " + ", ".join(f"[{a}]" for a in self.legal_actions()))
        return "\n".join(lines)

    def hand_information_state(self, player: int) -> str:
        """OpenSpiel's key for the current hand: the card index then the p/b history (e.g. `"0pb"`)."""
        hand = min(self._hand, self.hands - 1)
        history = self._history if not self.is_terminal() else self._past[-1][0]
        return str(self._deals[hand][player]) + "".join(_LETTER[a] for a in history)

    def information_state(self, player: int) -> str:
        """Equals OpenSpiel's `information_state_string` for one hand; earlier hands' public record is prefixed."""
        past = []
        for actions, shown, _ in self._past:
            letters = "".join(_LETTER[a] for a in actions)
            past.append(letters + (f"({shown[0]}{shown[1]})" if shown else ""))
        return "|".join([*past, self.hand_information_state(player)])

    @staticmethod
    def information_states(player: int, deck_size: int = 3) -> list[str]:
        """Every decision key of `player` in a one-hand game (6 per seat for the 3-card deck)."""
        histories = ["", "pb"] if player == 0 else ["p", "b"]
        return [f"{card}{h}" for card in range(deck_size) for h in histories]

    @staticmethod
    def action_for_letter(key: str, letter: str) -> str:
        """The move string for OpenSpiel action letter `p` (pass) or `b` (bet) at decision key `key`."""
        facing_bet = key.endswith("b")
        return {("p", False): "check", ("b", False): "bet", ("p", True): "fold", ("b", True): "call"}[
            (letter, facing_bet)
        ]
