"""The concurrent multi-game collector: many live games, and every pending model turn in one generate call.

Turns play into `TurnSample`s (one per learning turn) and `GameRecord`s; advantages and updates live elsewhere.

With `rollout.action_constraint: choice` a model turn samples among the legal moves (see
`rollout/choice.py`) instead of writing freely, so it is never invalid.

Budget policy (why a step may hold a few more samples than asked): a new game starts only while
fewer learning turns than the budget have been played in this call; every started game is played to
its end and all its samples are kept. Dropping unfinished games instead would favour short games
(their outcomes arrive first), which biases returns; finishing them costs at most the remaining turns
of the games in flight.

A bug in a game's own code must not take a run down anonymously or hang it: an exception it raises
(other than `IllegalMoveError`, which is an invalid move) or payoffs that are not finite and zero-sum
become a `GameError` naming the game, its seed and the moves so far, which either stops the run
(`rollout.on_game_error: stop`) or drops that game (`drop`, counted as `end/game_error`). No game is
played past `TURN_CAP` moves, whatever its `max_turns`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from spiral.config.schema import GameSpec, RolloutConfig
from spiral.errors import SpiralError
from spiral.games import Game, IllegalMoveError, make_game
from spiral.games.base import TURN_CAP
from spiral.games.check import returns_problem
from spiral.rollout.choice import choice_logprobs, sample_move, scoring_temperature
from spiral.rollout.engine import Engine
from spiral.rollout.prompts import PromptCache
from spiral.seeding import derive_seed
from spiral.text import last_boxed
from spiral.types import (
    EngineOutput,
    GameRecord,
    SamplingSettings,
    TurnRecord,
    TurnSample,
)

log = logging.getLogger(__name__)

POLICY = "policy"


class MoveChooser(Protocol):
    """Anything that picks a move inline (a scripted agent, a single-game model agent)."""

    def act(self, game: Game, rng: random.Random) -> str: ...


@dataclass
class Rollout:
    """What one `collect` call gathered."""

    samples: list[TurnSample]
    records: list[GameRecord]
    stats: dict[str, float]


@dataclass
class _Turn:
    """A learning turn whose return is known only when its game ends."""

    seat: int
    prompt_ids: list[int]
    output: EngineOutput
    invalid: bool
    choices: list[list[int]] | None  # with action_constraint choice: every legal move's completion ids
    choice_index: int


@dataclass
class _LiveGame:
    game: Game
    spec: GameSpec
    record: GameRecord
    policy_seats: frozenset[int]  # seats the learning engine plays
    sample_seats: frozenset[int]  # of those, the seats whose turns become samples
    rng: random.Random  # chance for scripted opponents in this game only
    turns: list[_Turn] = field(default_factory=list)
    played: list[str] = field(default_factory=list)  # the moves applied so far (they replay the game)
    attempt: str | None = None  # the move being applied, while apply_action runs
    to_move: int = 0  # the seat a pending game waits on
    ended: bool = False


class GameError(SpiralError):
    """A game's own code failed during a rollout; the message replays it (game, params, seed, moves)."""

    exit_code = 1

    def __init__(self, spec: GameSpec, seed: int, moves: list[str], attempt: str | None, error: BaseException) -> None:
        self.game, self.params, self.seed = spec.name, dict(spec.params), seed
        self.moves, self.attempt = list(moves), attempt
        frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
        where = f" at {frame.filename}:{frame.lineno}" if frame else ""
        during = f" while applying {attempt!r}" if attempt is not None else ""
        super().__init__(
            f"game {spec.name!r} failed{during}: {error!r}{where}, at seed {seed} after moves {moves!r}. Replay it: "
            f"g = make_game({spec.name!r}, {self.params!r}); g.reset({seed}); then g.apply_action(m) for each "
            "move. Set rollout.on_game_error=drop to drop such games and go on"
        )


def policy_seat(record: GameRecord) -> int | None:
    """The seat the policy played in a game against an opponent: the first move's seat if the policy made it,
    else the other one; None when nobody moved (the first prompt overflowed the context)."""
    if not record.transcript:
        return None
    first = record.transcript[0]
    return first.seat if first.agent == POLICY else 1 - first.seat


def invalid_reason(output: EngineOutput) -> str:
    """Why a completion that named no legal move failed: truncated, empty, no_box or illegal."""
    if output.truncated:
        return "truncated"
    if not output.text.strip():
        return "empty"
    if last_boxed(output.text) is None:
        return "no_box"
    return "illegal"


class Collector:
    """Plays `rollout_cfg.concurrent_games` games at once and batches all their model turns.

    `opponent` None is self-play (the engine plays every seat). Otherwise it plays the seats the
    learner does not: an `Engine` (batched like the policy, in its own generate call) or an object
    with `act(game, rng)` (a scripted or single-game agent, played inline). An engine opponent is
    prompted with the same template and sampling settings as the policy. `opponent` is a plain attribute,
    so a trainer sampling from an `OpponentPool` may swap it between `collect` calls.

    `learning_seats`: in self-play, the seats whose turns become samples (default: all); against an
    opponent, the seats the learner takes, cycled game by game (default: alternate 0, 1).
    """

    def __init__(
        self,
        engine: Engine,
        games: list[GameSpec],
        rollout_cfg: RolloutConfig,
        *,
        seed: int,
        opponent: Engine | MoveChooser | None = None,
        learning_seats: tuple[int, ...] | list[int] | None = None,
    ) -> None:
        if not games:
            raise ValueError("Collector needs at least one game spec")
        if opponent is not None and not isinstance(opponent, Engine) and not callable(getattr(opponent, "act", None)):
            raise TypeError(f"opponent must be None, an Engine or an agent with act(game, rng), not {type(opponent).__name__}")
        seats = (0, 1) if learning_seats is None else tuple(learning_seats)
        if not seats or any(s not in (0, 1) for s in seats):
            raise ValueError(f"learning_seats must be a non-empty subset of (0, 1), got {learning_seats!r}")
        self.engine = engine
        self.games = list(games)
        self.cfg = rollout_cfg
        self.seed = seed
        self.opponent = opponent
        self.learning_seats = seats
        # Counters persist across calls so consecutive steps see fresh games and fresh sampling seeds.
        self._games_started = 0
        self._generate_calls = 0
        # One per engine: the policy and an opponent checkpoint may tokenize differently.
        self._prompt_caches: dict[int, PromptCache] = {}

    # -- one step of data ------------------------------------------------------------------------

    def collect(self, num_samples: int) -> Rollout:
        """Play until at least `num_samples` learning turns are in finished games (see module docstring)."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        start = time.perf_counter()
        live: list[_LiveGame] = []
        finished: list[_LiveGame] = []
        batch_sizes: list[int] = []
        # Every game that yields samples yields at least one, so far more games than this means none
        # can (e.g. every first prompt exceeds the context): fail loudly instead of looping forever.
        max_games = 10 * num_samples + self.cfg.concurrent_games
        started = 0
        while True:
            finished += [g for g in live if g.ended]
            live = [g for g in live if not g.ended]
            played = sum(len(g.turns) for g in live + finished)
            while len(live) < self.cfg.concurrent_games and played < num_samples:
                if started >= max_games:
                    raise RuntimeError(
                        f"{started} games yielded only {played} learning turns: games end before the learner "
                        "moves (prompts longer than the engine's max_model_len?)"
                    )
                game = self._start_game()
                started += 1
                (finished if game.ended else live).append(game)
            if not live:
                break
            # Every live game now waits on a model turn: one generate call per engine for all of them.
            for engine, is_policy in ((self.engine, True), (self.opponent, False)):
                pending = [g for g in live if not g.ended and (g.to_move in g.policy_seats) == is_policy]
                if pending:
                    assert isinstance(engine, Engine)  # non-engine opponents never leave a game pending
                    if is_policy:
                        batch_sizes.append(len(pending))
                    self._model_turns(engine, pending, is_policy)

        samples = [s for g in finished for s in self._samples(g)]
        records = [g.record for g in finished]
        return Rollout(samples, records, self._stats(finished, samples, batch_sizes, time.perf_counter() - start))

    # -- game life cycle ---------------------------------------------------------------------------

    def _start_game(self) -> _LiveGame:
        n = self._games_started
        self._games_started += 1
        rng = random.Random(derive_seed(self.seed, "game", n))
        spec = rng.choices(self.games, weights=[g.weight for g in self.games])[0]
        game = make_game(spec.name, spec.params)
        if game.num_players != 2:
            raise ValueError(f"game {spec.name!r} has {game.num_players} players; the collector plays two-player games")
        if game.free_form and self.cfg.action_constraint == "choice":
            raise ValueError(f"game {spec.name!r} is free-form (its moves cannot be listed), so rollout.action_constraint "
                             "choice cannot apply; use action_constraint: none")
        game_seed = rng.getrandbits(31)
        if self.opponent is None:
            policy, sample = frozenset((0, 1)), frozenset(self.learning_seats)
        else:
            policy = sample = frozenset([self.learning_seats[n % len(self.learning_seats)]])
        live = _LiveGame(game, spec, GameRecord(game=game.name, seed=game_seed, params=dict(spec.params)), policy, sample, rng)
        with self._game_code(live):
            game.reset(game_seed)
            self._advance(live)
        return live

    @contextmanager
    def _game_code(self, g: _LiveGame) -> Iterator[None]:
        """Around calls into a game's code: its failure raises `GameError`, or with `on_game_error: drop`
        ends the game as `game_error` without samples (callers skip games that have ended)."""
        try:
            yield
        except Exception as err:  # noqa: BLE001 - whatever a game raises is its bug, reported with a replay
            failure = GameError(g.spec, g.record.seed, g.played, g.attempt, err)
            if self.cfg.on_game_error != "drop":
                raise failure from err
            log.warning("%s; dropped", failure)
            g.turns.clear()
            self._end(g, "game_error", [0.0, 0.0])

    def _advance(self, g: _LiveGame) -> None:
        """Play inline (scripted) turns until the game ends or waits on a model."""
        while True:
            if g.game.is_terminal():
                returns = list(g.game.returns())
                problem = returns_problem(returns, 2)
                if problem:
                    raise ValueError(problem)
                return self._end(g, "terminal", returns)
            if len(g.played) >= min(g.game.max_turns, TURN_CAP):
                return self._end(g, "turn_limit", [0.0, 0.0])
            seat = g.game.current_player()
            g.to_move = seat
            if seat in g.policy_seats or isinstance(self.opponent, Engine):
                return
            assert self.opponent is not None  # the policy plays every seat when there is no opponent
            observation = g.game.observation(seat)
            move = self.opponent.act(g.game, g.rng)
            name = getattr(self.opponent, "name", type(self.opponent).__name__)
            if not self._apply(g, seat, move):
                g.record.transcript.append(TurnRecord(seat, name, observation, move, None))
                log.warning("agent %s made an illegal move %r in %s", name, move, g.game.name)
                return self._end_invalid(g, seat)
            g.record.transcript.append(TurnRecord(seat, name, observation, move, move))

    def _model_turns(self, engine: Engine, pending: list[_LiveGame], is_policy: bool) -> None:
        """Prompt every pending game's mover, generate once, and apply each completion."""
        batch: list[tuple[_LiveGame, int, list[int]]] = []
        cache = self._prompt_caches.get(id(engine))
        if cache is None:
            cache = self._prompt_caches[id(engine)] = PromptCache(engine.tokenizer)
        texts: list[str] = []
        for g in pending:
            with self._game_code(g):  # rendering reads the game's description and observation
                texts.append(cache.render(g.game, g.to_move, self.cfg.template))
        pending = [g for g in pending if not g.ended]
        prompts = cache.encode(texts)
        for g, prompt in zip(pending, prompts, strict=True):
            seat = g.to_move
            # The engine shortens the generation budget to fit the context; only a prompt that fills
            # the whole context cannot be answered at all.
            if len(prompt) >= engine.max_model_len:
                log.info("%s: %d-token prompt fills max_model_len %d; draw",
                         g.game.name, len(prompt), engine.max_model_len)
                self._end(g, "context_overflow", [0.0, 0.0])
            else:
                batch.append((g, seat, prompt))
        if not batch:
            return
        stream = "policy" if is_policy else "opponent"
        sampling = SamplingSettings(
            temperature=self.cfg.temperature,
            top_p=self.cfg.top_p,
            max_tokens=self.cfg.max_tokens,
            seed=derive_seed(self.seed, stream, self._generate_calls),
        )
        self._generate_calls += 1
        if self.cfg.action_constraint == "choice":
            legal: list[list[str]] = []
            for g, _, _ in batch:
                with self._game_code(g):
                    legal.append(g.game.legal_actions())
            batch = [entry for entry in batch if not entry[0].ended]
            if not batch:
                return
            played: list[tuple[EngineOutput, Any, Any, int]] = self._choose(engine, batch, legal, sampling)
        else:
            outputs = engine.generate([p for _, _, p in batch], sampling)
            played = [(out, None, None, -1) for out in outputs]
        for (g, seat, prompt), (out, move, choices, index) in zip(batch, played, strict=True):
            with self._game_code(g):
                self._play_turn(g, seat, prompt, out, move, choices, index, is_policy)

    def _play_turn(self, g: _LiveGame, seat: int, prompt: list[int], out: EngineOutput, move: str | None,
                   choices: list[list[int]] | None, index: int, is_policy: bool) -> None:
        """Apply one model turn (`move` None: parse it from the completion) and play on to the next model turn."""
        if self.cfg.action_constraint != "choice" and not out.truncated:
            move = g.game.parse_action(out.text)
        observation = g.game.observation(seat)
        if move is not None and not self._apply(g, seat, move):
            move = None
        g.record.transcript.append(TurnRecord(seat, POLICY if is_policy else "opponent", observation, out.text, move))
        if seat in g.sample_seats:
            g.turns.append(_Turn(seat, prompt, out, move is None, choices, index))
        if move is None:
            log.debug("invalid move (%s) by seat %d in %s: %r", invalid_reason(out), seat, g.game.name, out.text[-200:])
            self._end_invalid(g, seat)
        else:
            self._advance(g)

    def _choose(self, engine: Engine, batch: list[tuple[_LiveGame, int, list[int]]], legal: list[list[str]],
                sampling: SamplingSettings) -> list[tuple[EngineOutput, str, list[list[int]], int]]:
        """`action_constraint: choice`: sample each move from the legal moves' renormalised probabilities
        (one score call for the batch; temperature 0 takes the most likely; top_p does not apply)."""
        temperature = scoring_temperature(sampling.temperature)
        choices, logprobs = choice_logprobs(engine, [p for _, _, p in batch], legal, temperature)
        rng = random.Random(sampling.seed)
        played = []
        for moves, options, lps in zip(legal, choices, logprobs):
            i = sample_move(lps, sampling.temperature, rng)
            text = engine.tokenizer.decode(options[i], skip_special_tokens=True)
            played.append((EngineOutput(options[i], text, [lps[i]], "stop"), moves[i], options, i))
        return played

    @staticmethod
    def _apply(g: _LiveGame, seat: int, move: str) -> bool:
        g.attempt = move  # stays set if apply_action fails otherwise: the failure report names the move
        try:
            g.game.apply_action(move)
        except IllegalMoveError:
            g.attempt = None
            return False
        g.attempt = None
        g.played.append(move)
        return True

    def _end_invalid(self, g: _LiveGame, offender: int) -> None:
        returns = [0.0, 0.0]
        returns[offender], returns[1 - offender] = self.cfg.invalid_penalty
        g.record.invalid_seat = offender
        self._end(g, "invalid_move", returns)

    @staticmethod
    def _end(g: _LiveGame, reason: str, returns: list[float]) -> None:
        g.record.returns = returns
        g.record.end_reason = reason
        g.ended = True

    @staticmethod
    def _samples(g: _LiveGame) -> list[TurnSample]:
        """Every learning turn of a finished game, each carrying its seat's final return."""
        return [
            TurnSample(
                game=g.game.name,
                seat=t.seat,
                prompt_ids=t.prompt_ids,
                completion_ids=list(t.output.token_ids),
                logprobs=list(t.output.logprobs),
                ret=g.record.returns[t.seat],
                invalid=t.invalid,
                truncated=t.output.truncated,
                choices=t.choices,
                choice_index=t.choice_index,
            )
            for t in g.turns
        ]

    @staticmethod
    def _stats(finished: list[_LiveGame], samples: list[TurnSample], batch_sizes: list[int], seconds: float) -> dict[str, float]:
        turns = [t for g in finished for t in g.turns]
        n = max(len(turns), 1)
        stats: dict[str, float] = {
            "games": float(len(finished)),
            "samples": float(len(samples)),
            "invalid_rate": sum(t.invalid for t in turns) / n,
            "truncated_rate": sum(t.output.truncated for t in turns) / n,
            "response_len_mean": sum(len(t.output.token_ids) for t in turns) / n,
            "generate_calls": float(len(batch_sizes)),
            "turns_per_generate": sum(batch_sizes) / max(len(batch_sizes), 1),
            "seconds": seconds,
            "turns_per_s": sum(batch_sizes) / seconds if seconds > 0 else 0.0,
        }
        for reason, count in Counter(g.record.end_reason for g in finished).items():
            stats[f"end/{reason}"] = float(count)
        for reason, count in Counter(invalid_reason(t.output) for t in turns if t.invalid).items():
            stats[f"invalid/{reason}"] = float(count)
        return stats


def write_transcripts(records: list[GameRecord], path: str | Path, append: bool = False) -> None:
    """Write one finished game per JSONL line (transcript, returns, end reason)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(dataclasses.asdict(record), ensure_ascii=False) + "\n")

