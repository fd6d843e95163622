"""The arena: play agents against each other on a game and summarise per-seat results.

Pure Python (no torch); agent i always sits in seat i, game k uses seed `seed + k`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from spiral.agents.base import Agent
from spiral.games import Game, IllegalMoveError, make_game
from spiral.types import GameRecord, TurnRecord


@dataclass
class ArenaResult:
    """Per-seat summary of a match; every list has one entry per seat."""

    game: str
    params: dict[str, Any]
    agents: list[str]
    games: int
    mean_return: list[float]
    stderr_return: list[float]  # standard error of the mean return
    win_rate: list[float]
    loss_rate: list[float]
    draw_rate: list[float]
    invalid_rate: list[float]  # fraction of games this seat lost by an illegal move
    mean_length: float  # moves per game

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def play_game(
    game: Game,
    agents: Sequence[Agent],
    seed: int,
    rngs: Sequence[random.Random],
    invalid_penalty: tuple[float, float] = (-1.0, 1.0),
    params: dict[str, Any] | None = None,
) -> GameRecord:
    """Play one game from `seed`. An illegal move ends it: the offender gets `invalid_penalty[0]`, the other seat `[1]`.

    `params` (the game's constructor parameters) are recorded so the game can be replayed. A model agent's
    turn records its whole completion; a scripted agent's records the move.
    """
    game.reset(seed)
    record = GameRecord(game=game.name, seed=seed, params=dict(params or {}))
    while not game.is_terminal():
        if len(record.transcript) >= game.max_turns:  # a game that breaks its own bound ends as a draw
            record.end_reason = "turn_limit"
            record.returns = [0.0] * game.num_players
            return record
        seat = game.current_player()
        observation = game.observation(seat)
        move = agents[seat].act(game, rngs[seat])
        output = getattr(agents[seat], "last_output", None)
        completion = output.text if output is not None else move
        try:
            game.apply_action(move)
        except IllegalMoveError:
            record.transcript.append(TurnRecord(seat, agents[seat].name, observation, completion, None))
            record.end_reason, record.invalid_seat = "invalid_move", seat
            record.returns = [invalid_penalty[0] if s == seat else invalid_penalty[1] for s in range(game.num_players)]
            return record
        record.transcript.append(TurnRecord(seat, agents[seat].name, observation, completion, move))
    record.returns = list(game.returns())
    return record


def summarize(game_name: str, params: dict[str, Any], agents: Sequence[Agent], records: Sequence[GameRecord]) -> ArenaResult:
    """Per-seat means and rates over finished games."""
    n, seats = len(records), range(len(agents))
    returns = [[r.returns[s] for r in records] for s in seats]
    means = [sum(x) / n for x in returns]
    stderr = [
        math.sqrt(sum((v - m) ** 2 for v in x) / (n - 1) / n) if n > 1 else 0.0 for x, m in zip(returns, means)
    ]
    return ArenaResult(
        game=game_name,
        params=dict(params),
        agents=[a.name for a in agents],
        games=n,
        mean_return=means,
        stderr_return=stderr,
        win_rate=[sum(v > 0 for v in x) / n for x in returns],
        loss_rate=[sum(v < 0 for v in x) / n for x in returns],
        draw_rate=[sum(v == 0 for v in x) / n for x in returns],
        invalid_rate=[sum(r.invalid_seat == s for r in records) / n for s in seats],
        mean_length=sum(len(r.transcript) for r in records) / n,
    )


def play_games(
    game_name: str,
    params: dict[str, Any] | None,
    agents: Sequence[Agent],
    n_games: int,
    seed: int = 0,
) -> list[GameRecord]:
    """Play `n_games` games of `game_name` with agent i in seat i; game k uses seed `seed + k`."""
    params = params or {}
    if n_games < 1:
        raise ValueError(f"n_games must be at least 1, got {n_games}")
    game = make_game(game_name, params)
    if len(agents) != game.num_players:
        raise ValueError(f"{game_name} needs {game.num_players} agents, got {len(agents)}")
    rngs = [random.Random(f"arena:{seed}:{seat}") for seat in range(len(agents))]
    return [play_game(game, agents, seed + k, rngs, params=params) for k in range(n_games)]


def play_match(
    game_name: str,
    params: dict[str, Any] | None,
    agents: Sequence[Agent],
    n_games: int,
    seed: int = 0,
) -> ArenaResult:
    """Play `n_games` games of `game_name` with agent i in seat i and summarise them."""
    return summarize(game_name, params or {}, agents, play_games(game_name, params, agents, n_games, seed))
