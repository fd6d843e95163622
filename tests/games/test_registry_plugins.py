"""Finding games: the decorator refuses duplicates; entry points and import paths load plugin games."""

from __future__ import annotations

from pathlib import Path

import pytest

from spiral.games import (
    DuplicateGameError,
    GameNotFound,
    check_game,
    list_games,
    make_game,
    register_game,
    resolve_game,
)
from spiral.games.tic_tac_toe import TicTacToe

COIN_GAME_SRC = Path(__file__).resolve().parents[2] / "examples" / "coin_game" / "src"


def _fake_distribution(root: Path, dist: str, entry_points: dict[str, str]) -> None:
    """What `pip install` leaves behind for entry points: a dist-info folder on sys.path."""
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[spiral.games]\n{lines}\n")


def test_duplicate_registration_is_refused():
    class Impostor(TicTacToe):
        name = "tic_tac_toe"

    with pytest.raises(DuplicateGameError, match="registered twice"):
        register_game(Impostor)
    assert resolve_game("tic_tac_toe") is TicTacToe
    assert register_game(TicTacToe) is TicTacToe  # registering the same class again is harmless


def test_entry_point_plugin_is_discovered_listed_and_checked(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "spiral_coin_game", {"coin_game": "coin_game:CoinGame"})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(COIN_GAME_SRC))
    cls = resolve_game("coin_game")
    assert cls.__name__ == "CoinGame"
    info = next(i for i in list_games() if i.name == "coin_game")
    assert info.source == "entry point coin_game:CoinGame" and info.params == {"bias": 0.5}
    check_game(cls, games=50)
    assert make_game("coin_game", {"bias": 1.0}).legal_actions() == ["heads", "tails"]


def test_two_plugins_claiming_one_name_are_refused(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "plugin_a", {"contested_game": "pkg_a:Game"})
    _fake_distribution(tmp_path, "plugin_b", {"contested_game": "pkg_b:Game"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DuplicateGameError, match="contested_game"):
        resolve_game("contested_game")


def test_import_paths_and_unknown_names(monkeypatch):
    monkeypatch.syspath_prepend(str(COIN_GAME_SRC))
    assert resolve_game("coin_game:CoinGame").__name__ == "CoinGame"
    with pytest.raises(GameNotFound, match="cannot import"):
        resolve_game("no_such_module_xyz:Game")
    with pytest.raises(GameNotFound, match="Did you mean 'kuhn_poker'"):
        resolve_game("kuhn_pokr")
    with pytest.raises(ValueError, match="bad parameters for game 'kuhn_poker'"):
        make_game("kuhn_poker", {"no_such_option": 1})


def test_plugin_cannot_take_a_builtin_name(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "squatter", {"kuhn_poker": "coin_game:CoinGame"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DuplicateGameError, match="kuhn_poker"):
        list_games()
