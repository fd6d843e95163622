"""`check_game`: a random-play conformance test every game (in-tree or plugin) must pass.

It plays many seeded random games and fails with a reason a game author can act on; it never fixes games.
Its memory stays bounded whatever the game does: no game is played past `TURN_CAP` moves, and each
state is remembered as a 16-byte digest, not as its observations.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from typing import Any

from spiral.games.base import TURN_CAP, Game, IllegalMoveError

# Strings no sensible game accepts as a move; apply_action must refuse them with IllegalMoveError.
_GARBAGE = ("", "\x00", "not a move at all", "}{" * 50, "9" * 5000, "\\boxed{", "é" * 300)


class GameCheckError(AssertionError):
    """A game broke a rule of the `Game` contract; the message says which and how to reproduce it."""


def _trace(game: Game) -> bytes:
    """A digest of everything a seat could observe about the current state (for the determinism check)."""
    terminal = game.is_terminal()
    seen = (
        terminal,
        None if terminal else game.current_player(),
        tuple(game.observation(p) for p in range(game.num_players)),
        tuple(game.legal_actions()),
    )
    return hashlib.blake2b(repr(seen).encode("utf-8", "surrogatepass"), digest_size=16).digest()


def returns_problem(returns: Any, num_players: int) -> str | None:
    """Why `returns` breaks the contract (a finite number per seat, summing to zero), or None."""
    values = tuple(returns)
    if len(values) != num_players or not all(isinstance(r, (int, float)) and math.isfinite(r) for r in values):
        return f"returns() must be {num_players} finite numbers, got {values!r}"
    if abs(sum(values)) > 1e-9:
        return f"returns {values!r} are not zero-sum"
    return None


def _check_state(game: Game, where: str) -> list[str]:
    player = game.current_player()
    if not isinstance(player, int) or not 0 <= player < game.num_players:
        raise GameCheckError(f"current_player() returned {player!r}, not a seat in 0..{game.num_players - 1} ({where})")
    legal = game.legal_actions()
    if not legal:
        raise GameCheckError(f"no legal action before the end of the game ({where})")
    if not all(isinstance(a, str) for a in legal) or len(set(legal)) != len(legal):
        raise GameCheckError(f"legal_actions() must be distinct strings, got {legal[:10]!r} ({where})")
    for obs_player in range(game.num_players):
        if not isinstance(game.observation(obs_player), str):
            raise GameCheckError(f"observation({obs_player}) is not a string ({where})")
    return legal


def _check_illegal_moves(game: Game, legal: list[str], where: str) -> None:
    before = _trace(game)
    for junk in _GARBAGE:
        if junk in legal:
            continue
        try:
            parsed = game.parse_action(junk)
        except Exception as err:  # noqa: BLE001 - any crash is the finding
            raise GameCheckError(f"parse_action crashed on {junk[:40]!r}: {err!r} ({where})") from err
        if parsed is not None and parsed not in legal:
            raise GameCheckError(f"parse_action({junk[:40]!r}) returned {parsed!r}, which is not legal ({where})")
        _must_refuse(game, junk, f"the illegal move {junk[:40]!r}", where)
        if _trace(game) != before:
            raise GameCheckError(f"a refused move {junk[:40]!r} changed the state ({where})")
    for action in legal:
        parsed = game.parse_action(f"I choose \\boxed{{{action}}}")
        if parsed != action:
            raise GameCheckError(f"parse_action of the boxed legal move {action!r} gave {parsed!r} ({where})")


def _must_refuse(game: Game, move: str, what: str, where: str) -> None:
    """apply_action(move) must raise IllegalMoveError: anything else, or no error, is a finding."""
    try:
        game.apply_action(move)
    except IllegalMoveError:
        return
    except Exception as err:  # noqa: BLE001 - any crash is the finding
        raise GameCheckError(f"apply_action crashed on {what}: {err!r} ({where})") from err
    raise GameCheckError(f"apply_action accepted {what} ({where})")


def _play(game: Game, seed: int, rng: random.Random, probe: bool, turn_cap: int) -> tuple[list[str], list[bytes]]:
    """One random game; returns the moves and the trace after every move."""
    game.reset(seed)
    moves: list[str] = []
    traces = [_trace(game)]
    limit = min(game.max_turns, turn_cap)
    while not game.is_terminal():
        where = f"seed {seed}, after moves {_shorten(moves)}"
        if len(moves) >= limit:
            cap = f" (capped at {turn_cap}: no game may run longer)" if limit < game.max_turns else ""
            raise GameCheckError(f"did not terminate within max_turns={limit}{cap} ({where})")
        legal = _check_state(game, where)
        if probe:
            _check_illegal_moves(game, legal, where)
        moves.append(rng.choice(legal))
        try:
            game.apply_action(moves[-1])
        except Exception as err:  # noqa: BLE001
            raise GameCheckError(f"apply_action raised {err!r} on legal move {moves[-1]!r} ({where})") from err
        traces.append(_trace(game))
    return moves, traces


def _shorten(moves: list[str], keep: int = 50) -> str:
    """A move list for a message: all of it when short, else its length and last moves."""
    return repr(moves) if len(moves) <= keep else f"[{len(moves)} moves, ending {moves[-keep:]!r}]"


def _check_returns(game: Game, where: str) -> tuple[float, ...]:
    returns = tuple(game.returns())
    problem = returns_problem(returns, game.num_players)
    if problem:
        raise GameCheckError(f"{problem} ({where})")
    move = game.legal_actions()[0] if game.legal_actions() else "any move"
    _must_refuse(game, move, f"the move {move!r} after the end", where)
    return returns


def check_game(
    game_cls_or_factory: type[Game] | Callable[..., Game],
    *,
    games: int = 200,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    turn_cap: int = TURN_CAP,
) -> None:
    """Play `games` seeded random games and raise `GameCheckError` on the first broken rule.

    Checks: name and description set; every non-terminal state has a seat to move and legal moves;
    the game ends within `max_turns` (and within `turn_cap` moves whatever `max_turns` says); returns are
    finite and zero-sum; a seed plus a move sequence
    replays identically on a fresh instance (observations, legal moves, returns); junk moves are
    refused with `IllegalMoveError` without changing the state and `parse_action` never crashes;
    the boxed form of every legal move parses back to itself. A free-form game (`game.free_form`, no move
    list) gets what can be checked without one: see `_check_free_form`.
    """
    make = lambda: game_cls_or_factory(**(params or {}))  # noqa: E731
    game = make()
    if not isinstance(game, Game):
        raise GameCheckError(f"{game_cls_or_factory!r} made {type(game).__name__}, not a spiral.games.Game")
    if not game.name or not game.description:
        raise GameCheckError(f"{type(game).__name__} must set a non-empty `name` and `description`")
    if not isinstance(game.max_turns, int) or game.max_turns < 1:
        raise GameCheckError(f"max_turns must be a positive int, got {game.max_turns!r}")
    if game.free_form:
        return _check_free_form(make, game, games=min(games, 20), seed=seed, turn_cap=turn_cap)
    for i in range(games):
        game_seed = seed + i
        rng = random.Random(f"check:{seed}:{i}")
        moves, traces = _play(game, game_seed, rng, probe=i < 20, turn_cap=turn_cap)  # junk probing is slow
        where = f"seed {game_seed}, moves {_shorten(moves)}"
        returns = _check_returns(game, where)
        replay, replay_traces = _replay(make, game_seed, moves, where)
        if replay_traces != traces or tuple(replay.returns()) != returns:
            step = next((k for k, (a, b) in enumerate(zip(traces, replay_traces)) if a != b), len(moves))
            raise GameCheckError(
                f"not deterministic: replaying seed {game_seed} with the same moves differs after {step} moves ({where})"
            )


def _check_free_form(make: Callable[[], Game], game: Game, *, games: int, seed: int, turn_cap: int) -> None:
    """`check_game` for a free-form game (no move list to play from): it plays the junk strings as moves.

    Each must be refused with `IllegalMoveError` without changing the state, or accepted as a move (a chat line
    in a negotiation); the accepted ones must replay identically from the seed, and `parse_action` never crash.
    """
    limit = min(game.max_turns, turn_cap)
    for i in range(games):
        game_seed = seed + i
        game.reset(game_seed)
        if game.legal_actions():
            raise GameCheckError(f"a free-form game must list no moves, got {game.legal_actions()[:5]!r} (seed {game_seed})")
        moves: list[str] = []
        traces = [_trace(game)]
        rng = random.Random(f"check:{seed}:{i}")
        while not game.is_terminal():
            where = f"seed {game_seed}, after moves {_shorten(moves)}"
            if len(moves) >= limit:
                raise GameCheckError(f"did not terminate within max_turns={limit} ({where})")
            _check_state_free_form(game, where)
            played = _play_junk(game, rng, where)
            if played is None:
                break  # the game refuses every junk string here: nothing more this checker can play
            moves.append(played)
            traces.append(_trace(game))
        where = f"seed {game_seed}, moves {_shorten(moves)}"
        if game.is_terminal():
            problem = returns_problem(tuple(game.returns()), game.num_players)
            if problem:
                raise GameCheckError(f"{problem} ({where})")
        _, replay_traces = _replay(make, game_seed, moves, where)
        if replay_traces != traces:
            raise GameCheckError(f"not deterministic: replaying seed {game_seed} with the same moves differs ({where})")


def _replay(make: Callable[[], Game], game_seed: int, moves: list[str], where: str) -> tuple[Game, list[bytes]]:
    """A fresh game reset with `game_seed` and played through `moves`, and its state trace after each move."""
    replay = make()
    replay.reset(game_seed)
    traces = [_trace(replay)]
    for move in moves:
        try:
            replay.apply_action(move)
        except IllegalMoveError as err:
            raise GameCheckError(
                f"not deterministic: a fresh game with the same seed refused move {move!r}: {err} ({where})"
            ) from err
        traces.append(_trace(replay))
    return replay, traces


def _play_junk(game: Game, rng: random.Random, where: str) -> str | None:
    """Apply the first junk string (in random order) the game accepts; refusals must leave the state unchanged."""
    before = _trace(game)
    for junk in rng.sample(_GARBAGE, len(_GARBAGE)):
        try:
            game.apply_action(junk)
        except IllegalMoveError:
            if _trace(game) != before:
                raise GameCheckError(f"a refused move {junk[:40]!r} changed the state ({where})") from None
            continue
        except Exception as err:  # noqa: BLE001 - any crash is the finding
            raise GameCheckError(f"apply_action crashed on {junk[:40]!r}: {err!r} ({where})") from err
        return junk
    return None


def _check_state_free_form(game: Game, where: str) -> None:
    player = game.current_player()
    if not isinstance(player, int) or not 0 <= player < game.num_players:
        raise GameCheckError(f"current_player() returned {player!r}, not a seat in 0..{game.num_players - 1} ({where})")
    for obs_player in range(game.num_players):
        if not isinstance(game.observation(obs_player), str):
            raise GameCheckError(f"observation({obs_player}) is not a string ({where})")
    for junk in _GARBAGE:
        try:
            parsed = game.parse_action(junk)
        except Exception as err:  # noqa: BLE001 - any crash is the finding
            raise GameCheckError(f"parse_action crashed on {junk[:40]!r}: {err!r} ({where})") from err
        if parsed is not None and not isinstance(parsed, str):
            raise GameCheckError(f"parse_action({junk[:40]!r}) returned {parsed!r}, not a string or None ({where})")
