"""The `Agent` interface: something that picks moves in a `Game` (scripted policies now, models later).

Agents read the game through its public methods only and never change it; the caller applies the move.
"""

from __future__ import annotations

import abc
import random

from spiral.games.base import Game


class Agent(abc.ABC):
    """A policy for any seat. `act` returns a move string; the caller applies it and handles illegal ones."""

    name: str = ""

    @abc.abstractmethod
    def action_probabilities(self, game: Game) -> dict[str, float]:
        """Probability of each legal move for the seat to move (exact for scripted agents)."""

    def act(self, game: Game, rng: random.Random) -> str:
        """Sample a move from `action_probabilities` with the caller's generator."""
        probs = self.action_probabilities(game)
        moves = list(probs)
        return rng.choices(moves, weights=[probs[m] for m in moves])[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class UnsupportedGameError(ValueError):
    """An agent was asked to play a game (or variant) it has no policy for."""
