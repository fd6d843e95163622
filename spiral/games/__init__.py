"""Text games: the `Game` interface, the registry (decorator, entry points, import paths) and `check_game`."""

from spiral.games.base import Game, IllegalMoveError
from spiral.games.check import GameCheckError, check_game
from spiral.games.registry import (
    DuplicateGameError,
    GameNotFound,
    list_games,
    make_game,
    register_game,
    resolve_game,
)

__all__ = [
    "DuplicateGameError",
    "Game",
    "GameCheckError",
    "GameNotFound",
    "IllegalMoveError",
    "check_game",
    "list_games",
    "make_game",
    "register_game",
    "resolve_game",
]
