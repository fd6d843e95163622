"""Finding games by name: in-tree games (decorator), installed plugins (entry points), import paths.

Third-party entry points in the group `spiral.games` are only imported when first looked up.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from spiral.games.base import Game

ENTRY_POINT_GROUP = "spiral.games"
_BUILTIN_MODULES = (
    "spiral.games.kuhn_poker",
    "spiral.games.tic_tac_toe",
    "spiral.games.simple_negotiation",
    "spiral.games.pig_dice",
    "spiral.games.liars_dice",
)

# Game names `<scheme>:<id>` that wrap another ecosystem's games (module with `game_class(id)`), imported on first use.
ADAPTER_SCHEMES = {"openspiel": "spiral.games.openspiel_game", "textarena": "spiral.games.textarena_game"}

_REGISTRY: dict[str, type[Game]] = {}
_SOURCES: dict[str, str] = {}
_builtins_loaded = False


def builtin_game_names() -> list[str]:
    """The in-tree games' names, in a fixed order (one module per game, named after it)."""
    return [module.rsplit(".", 1)[1] for module in _BUILTIN_MODULES]


class GameNotFound(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


class DuplicateGameError(ValueError):
    """Two games were registered under one name."""


def register_game(cls: type[Game]) -> type[Game]:
    """Class decorator for in-tree games: `@register_game class MyGame(Game): name = "my_game"`."""
    _add(cls.name, cls, source=cls.__module__)
    return cls


def _add(name: str, cls: type[Game], source: str) -> None:
    if not name:
        raise ValueError(f"{cls.__qualname__} must set a non-empty class attribute `name`")
    if not (isinstance(cls, type) and issubclass(cls, Game)):
        raise TypeError(f"{source}: {cls!r} is not a subclass of spiral.games.Game")
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls:
        raise DuplicateGameError(f"game name {name!r} is registered twice: by {_SOURCES[name]} and by {source}")
    _REGISTRY[name] = cls
    _SOURCES[name] = source


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        _builtins_loaded = True


def _plugin_entry_points() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found and found[ep.name].value != ep.value:
            raise DuplicateGameError(f"game name {ep.name!r} is provided by two plugins: {found[ep.name].value}, {ep.value}")
        found[ep.name] = ep
        if ep.name in _REGISTRY and _SOURCES[ep.name] != f"entry point {ep.value}":
            raise DuplicateGameError(f"plugin entry point {ep.value} uses the name {ep.name!r}, "
                                     f"already taken by {_SOURCES[ep.name]}")
    return found


def _import_path(path: str) -> type[Game]:
    module_name, _, attr = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise GameNotFound(f"cannot import game {path!r}: {err}") from None
    if not (isinstance(cls, type) and issubclass(cls, Game)):
        raise GameNotFound(f"{path!r} is not a subclass of spiral.games.Game")
    return cls


def resolve_game(name: str) -> type[Game]:
    """The Game class for a registered name, an entry-point name, `openspiel:<game>`, `textarena:<env id>`,
    or `package.module:Class`."""
    scheme, _, rest = name.partition(":")
    if rest and scheme in ADAPTER_SCHEMES:
        return importlib.import_module(ADAPTER_SCHEMES[scheme]).game_class(rest)
    if ":" in name:
        return _import_path(name)
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    plugins = _plugin_entry_points()
    if name in plugins:
        cls = plugins[name].load()
        _add(name, cls, source=f"entry point {plugins[name].value}")
        return cls
    options = sorted(set(_REGISTRY) | set(plugins))
    close = difflib.get_close_matches(name, options, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise GameNotFound(f"unknown game {name!r}.{hint} Known games: {', '.join(options)}")


def make_game(name: str, params: dict[str, Any] | None = None) -> Game:
    """Instantiate a game; unknown parameters fail with the game's name in the message."""
    cls = resolve_game(name)
    try:
        return cls(**(params or {}))
    except TypeError as err:
        raise ValueError(f"bad parameters for game {name!r}: {err}") from None


@dataclass
class GameInfo:
    name: str
    players: int
    params: dict[str, Any]
    source: str


def list_games() -> list[GameInfo]:
    """Every registered game, including installed plugins (which this imports)."""
    import inspect

    _load_builtins()
    for name in _plugin_entry_points():
        resolve_game(name)
    infos = []
    for name, cls in sorted(_REGISTRY.items()):
        sig = inspect.signature(cls.__init__)
        params = {p.name: p.default for p in sig.parameters.values() if p.default is not p.empty}
        infos.append(GameInfo(name, cls.num_players, params, _SOURCES[name]))
    return infos
