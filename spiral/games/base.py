"""The `Game` interface every text game implements (in the spirit of OpenSpiel's State).

A game is a seeded, deterministic state machine for two seats; it knows nothing of models or torch.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from spiral.games.parsing import match_boxed_action

TURN_CAP = 10_000
"""No game is played past this many moves, whatever its `max_turns`: `check_game` fails a game that has
not ended by then, and training ends it as a `turn_limit` draw."""


class Game(abc.ABC):
    """A two-player zero-sum turn-based text game.

    Subclasses set `name`, implement the abstract methods, and accept their options as keyword
    arguments of `__init__` (these are `games[].params` in configs).
    """

    name: ClassVar[str] = ""
    num_players: ClassVar[int] = 2
    description: str = ""
    """One paragraph of rules, shown to the model at the top of every prompt."""
    free_form: bool = False
    """True when the moves cannot be listed (`legal_actions()` is empty): the model writes a move and
    `apply_action` judges it; `action_constraint: choice` and agents that pick from a list refuse such games."""
    max_turns: int = 100
    """Upper bound on moves (at most `TURN_CAP` apply); `check_game` fails a game that runs longer and
    training ends it as a draw. Instances may override."""

    @abc.abstractmethod
    def reset(self, seed: int) -> None:
        """Start a new game; all chance (cards, valuations, dice) comes from `seed`."""

    @abc.abstractmethod
    def current_player(self) -> int:
        """Seat to move (0-based). Undefined once terminal."""

    @abc.abstractmethod
    def observation(self, player: int) -> str:
        """What `player` may see: its private information and the public history, never the opponent's secrets."""

    @abc.abstractmethod
    def legal_actions(self) -> list[str]:
        """Moves the current player may make, as the exact strings the model should box."""

    @abc.abstractmethod
    def apply_action(self, action: str) -> None:
        """Play a legal move for the current player. Raises `IllegalMoveError` for anything else."""

    @abc.abstractmethod
    def is_terminal(self) -> bool:
        """True once the game is over."""

    @abc.abstractmethod
    def returns(self) -> list[float]:
        """Payoff per seat; zero-sum. Only meaningful once terminal (zeros before)."""

    def parse_action(self, text: str) -> str | None:
        """Turn a model completion into a legal action, or None when it names no legal move.

        Default: the last brace-matched `\\boxed{...}`, matched case- and bracket-insensitively.
        Games with structured moves (offers, bids) override this.
        """
        return match_boxed_action(text, self.legal_actions())

    def information_state(self, player: int) -> str:
        """A key that identifies what `player` knows (used by evaluators); defaults to the observation."""
        return self.observation(player)


class IllegalMoveError(ValueError):
    """Raised by `Game.apply_action` for a move that is not legal in the current state."""
