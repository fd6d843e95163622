"""Game evaluation: a policy against opponents on each game and seat, plus exact exploitability (Kuhn Poker and
small `openspiel:<game>` games).

Models play through the batched collector (all games of a seat share each generate call); scripted agents
play through the arena. Settings come from `EvalConfig` (games, opponents, episodes, sampling, exploitability) and
`RolloutConfig` (engine, template, action constraint); the result is a typed `GameReport`, whose `to_metrics`
gives the logged `eval/...` metrics and `to_dict` the JSON of `spiral eval --json`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from spiral.agents import Agent, UnsupportedGameError, is_model_spec, make_agent
from spiral.agents.arena import ArenaResult, play_match, summarize
from spiral.agents.model import ModelAgent
from spiral.config.schema import EvalConfig, GameSpec, RolloutConfig
from spiral.eval.exploitability import (
    ExploitabilityResult,
    PolicyTarget,
    exploitability_target,
    kuhn_target,
    model_exploitability,
    policy_exploitability,
)
from spiral.games import make_game
from spiral.rollout.collector import Collector, policy_seat
from spiral.rollout.engine import Engine
from spiral.rollout.engine_factory import create_engine
from spiral.seeding import derive_seed
from spiral.types import GameRecord, SamplingSettings

log = logging.getLogger(__name__)

KUHN = "kuhn_poker"
SEATS = (0, 1)
LOGGED_POLICY_SETS = 24
"""`GameReport.to_metrics` logs the read-out policy itself only for games with at most this many information sets."""
# Per-seat metrics that are averages over games, so seats combine by a games-weighted mean.
_MEAN_METRICS = ("return_mean", "win_rate", "loss_rate", "draw_rate", "invalid_rate", "opponent_invalid_rate",
                 "length_mean", "response_len_mean", "truncated_rate")


@dataclass(frozen=True)
class SeatResult:
    """How the evaluated agent did in one seat against one opponent (rates are per game)."""

    games: int
    return_mean: float
    return_stderr: float
    win_rate: float
    loss_rate: float
    draw_rate: float
    invalid_rate: float
    opponent_invalid_rate: float
    length_mean: float
    response_len_mean: float | None = None
    """Model policies only: mean completion length (tokens) of its turns."""
    truncated_rate: float | None = None
    """Model policies only: share of its turns cut off at the generation budget."""

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class MatchResult:
    """Results against one opponent: per seat the agent played (a seat nobody reached is absent)."""

    seats: dict[int, SeatResult]
    unplayed: int = 0
    """Games nobody moved in (the first prompt overflowed the context): counted, not attributed to a seat."""


@dataclass(frozen=True)
class Skipped:
    """An opponent that cannot play this game, and why."""

    reason: str


@dataclass
class GameResult:
    """One game: each opponent's results (by label) and, for Kuhn Poker, the agent's exploitability."""

    opponents: dict[str, MatchResult | Skipped] = field(default_factory=dict)
    exploitability: ExploitabilityResult | None = None


@dataclass
class GameReport:
    """An agent's game evaluation: one `GameResult` per game."""

    agent: str
    games: dict[str, GameResult]

    def to_metrics(self) -> dict[str, float]:
        """`eval/<game>/<opponent>/<metric>` (seats combined, games-weighted), `.../seat<i>/<metric>`, and
        `eval/<game>/{exploitability,nash_conv}`, `eval/<game>/exploitability_invalid` for a model that writes its
        moves, and, for games with few information sets
        (Kuhn), the read-out policy `eval/kuhn_poker/policy/<information set>/<move>`."""
        flat: dict[str, float] = {}
        for game, result in self.games.items():
            for label, match in result.opponents.items():
                if isinstance(match, MatchResult):
                    flat.update(_match_metrics(f"eval/{game}/{label}", match))
            if result.exploitability is not None:
                detail = result.exploitability
                flat[f"eval/{game}/exploitability"] = float(detail.exploitability)
                flat[f"eval/{game}/nash_conv"] = float(detail.nash_conv)
                if detail.invalid:  # measured only for a model that writes its moves
                    flat[f"eval/{game}/exploitability_invalid"] = float(detail.invalid_mean)
                # The tabular policy itself (Kuhn has 12 information sets): eval/kuhn_poker/policy/1pb/call.
                logged = detail.policy if len(detail.policy) <= LOGGED_POLICY_SETS else {}
                for infoset, probs in logged.items():
                    for move, prob in probs.items():
                        flat[f"eval/{game}/policy/{infoset}/{move}"] = float(prob)
        return flat

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: `{"agent": spec, "games": {game: {opponent: {"seat0": {...}, "seat1": {...}} or
        {"skipped": reason}, "exploitability": x, "exploitability_detail": {...}}}}`."""
        games: dict[str, Any] = {}
        for game, result in self.games.items():
            entries: dict[str, Any] = {}
            for label, match in result.opponents.items():
                if isinstance(match, Skipped):
                    entries[label] = {"skipped": match.reason}
                    continue
                entries[label] = {f"seat{s}": match.seats[s].to_dict() if s in match.seats else {"games": 0.0}
                                  for s in SEATS}
                if match.unplayed:
                    entries[label]["unplayed"] = match.unplayed
            if result.exploitability is not None:
                entries["exploitability"] = result.exploitability.exploitability
                entries["exploitability_detail"] = result.exploitability.to_dict()
            games[game] = entries
        return {"agent": self.agent, "games": games}


def _match_metrics(prefix: str, match: MatchResult) -> dict[str, float]:
    """One opponent's metrics: seats combined by a games-weighted mean, and each seat's own."""
    seats = [match.seats[s].to_dict() if s in match.seats else {"games": 0.0} for s in SEATS]
    flat = {f"{prefix}/games": sum(v["games"] for v in seats)}
    if match.unplayed:
        flat[f"{prefix}/unplayed"] = float(match.unplayed)
    for metric in _MEAN_METRICS:
        played = [v for v in seats if metric in v]
        if played:
            flat[f"{prefix}/{metric}"] = sum(v[metric] * v["games"] for v in played) / sum(v["games"] for v in played)
    for s, view in zip(SEATS, seats):
        for metric, value in view.items():
            flat[f"{prefix}/seat{s}/{metric}"] = float(value)
    return flat


def eval_sampling(cfg: EvalConfig, seed: int | None = None) -> SamplingSettings:
    """The sampling settings of `cfg` (temperature, top-p, generation budget), with an optional seed."""
    return SamplingSettings(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=seed)


def opponent_label(spec: str) -> str:
    """The name an opponent goes by in reports and metric keys: agent specs as given, a model path's last part."""
    return Path(spec.rstrip("/\\")).name if is_model_spec(spec) and not spec.startswith("builtin:") else spec


def _game_specs(games: Sequence[str]) -> list[GameSpec]:
    specs = [GameSpec(name=g) for g in games]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"each game may be evaluated once, got {names}")
    return specs


def _labels(opponents: Sequence[str]) -> dict[str, str]:
    labels = {spec: opponent_label(spec) for spec in opponents}
    if len(set(labels.values())) != len(labels):
        raise ValueError(f"opponents {list(opponents)} would share a name in the report; give distinct paths")
    return labels


def _unsupported(agent: Agent, spec: GameSpec) -> str | None:
    """Why `agent` cannot play this game (None when it can), asked on the game's opening position."""
    game = make_game(spec.name, spec.params)
    game.reset(0)
    try:
        agent.action_probabilities(game)
    except UnsupportedGameError as err:
        return str(err)
    return None


def _seat_result(result: ArenaResult, seat: int, **model_only: float) -> SeatResult:
    """One seat's results from an arena summary: its own rates, and the opponent's invalid moves."""
    return SeatResult(
        games=result.games,
        return_mean=result.mean_return[seat],
        return_stderr=result.stderr_return[seat],
        win_rate=result.win_rate[seat],
        loss_rate=result.loss_rate[seat],
        draw_rate=result.draw_rate[seat],
        invalid_rate=result.invalid_rate[seat],
        opponent_invalid_rate=result.invalid_rate[1 - seat],
        length_mean=result.mean_length,
        **model_only,
    )


def _split_by_policy_seat(records: list[GameRecord]) -> tuple[dict[int, list[GameRecord]], int]:
    """Collector records grouped by the seat the policy played (`policy_seat`), and the count of games nobody
    moved in (they cannot be attributed, only counted)."""
    by_seat: dict[int, list[GameRecord]] = {seat: [] for seat in SEATS}
    unplayed = 0
    for record in records:
        seat = policy_seat(record)
        if seat is None:
            unplayed += 1
        else:
            by_seat[seat].append(record)
    return by_seat, unplayed


def _exploitability_target(spec: GameSpec) -> PolicyTarget | None:
    """Where exploitability applies: standard Kuhn Poker for `kuhn_poker`, and small `openspiel:` games."""
    if spec.name == KUHN:
        return kuhn_target()
    if spec.name.startswith("openspiel:"):
        try:
            return exploitability_target(spec.name, spec.params)
        except ValueError as err:
            log.info("no exploitability for %s: %s", spec.name, err)
    return None


def exploitability_targets(games: Sequence[str]) -> dict[str, PolicyTarget]:
    """The evaluated games (`eval.games`) that have exact exploitability, by name, and their targets."""
    targets = {spec.name: _exploitability_target(spec) for spec in _game_specs(games)}
    return {name: target for name, target in targets.items() if target is not None}


# -- a model policy ---------------------------------------------------------------------------------


def evaluate_games(
    engine: Engine,
    eval_cfg: EvalConfig,
    rollout_cfg: RolloutConfig,
    *,
    seed: int,
    sampling: SamplingSettings | None = None,
    name: str = "policy",
    opponent_engines: Mapping[str, Engine] | None = None,
    engine_kwargs: dict[str, Any] | None = None,
) -> GameReport:
    """Play the model behind `engine` against each of `eval_cfg.opponents` in each seat of each of `eval_cfg.games`,
    `eval_cfg.episodes` games a seat, with the prompt template, engine kind and action constraint of `rollout_cfg`.

    `sampling` overrides `eval_cfg`'s settings (e.g. to add a per-step seed). Opponents are agent specs (`random`,
    `nash:alpha=0.1`, ...) or model paths (checkpoints, hub ids, `builtin:NAME`). A model opponent plays through its
    engine in `opponent_engines` (the caller's, left open) or else through a fresh secondary engine of
    `rollout_cfg.engine` built with `engine_kwargs` and closed after use. Scripted opponents that cannot play a game
    are skipped with the reason. With `eval_cfg.exploitability`, kuhn_poker and small openspiel:<game> games also get
    the exact exploitability of the model's policy (see `model_exploitability`). With `action_constraint: choice`
    the model plays its renormalised
    distribution over legal moves, as training does.
    """
    episodes, template = eval_cfg.episodes, rollout_cfg.template
    sampling = sampling or eval_sampling(eval_cfg)
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    specs, labels = _game_specs(eval_cfg.games), _labels(eval_cfg.opponents)
    # Only what evaluation shares with training; the rest of the training rollout settings stay at their defaults.
    collect_cfg = RolloutConfig(
        engine=rollout_cfg.engine,
        concurrent_games=len(SEATS) * episodes,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        max_tokens=sampling.max_tokens,
        template=template,
        action_constraint=rollout_cfg.action_constraint,
    )
    policy = ModelAgent(engine, template, sampling, name=name)
    report = GameReport(name, {spec.name: GameResult() for spec in specs})
    given = opponent_engines or {}
    for opp_spec, label in labels.items():
        opp_engine = None
        if is_model_spec(opp_spec) and opp_spec not in given:
            opp_engine = create_engine(rollout_cfg.engine, opp_spec, secondary=True, **(engine_kwargs or {}))
        try:
            opponent: Engine | Agent = given.get(opp_spec) or opp_engine or make_agent(opp_spec, seed)
            # The opponent's name in transcripts and arena summaries.
            opp_agent = opponent if isinstance(opponent, Agent) else ModelAgent(opponent, template, sampling, name=label)
            for spec in specs:
                reason = _unsupported(opponent, spec) if isinstance(opponent, Agent) else None
                if reason is not None:
                    log.warning("skipping opponent %s on %s: %s", label, spec.name, reason)
                    report.games[spec.name].opponents[label] = Skipped(reason)
                    continue
                # One collector for both seats (games alternate seat 0, 1), so every generate call serves
                # all live games. A budget of one learning turn starts exactly 2 * episodes games: they all
                # start before the first generate, and the budget is met once any game reaches the model.
                collector = Collector(engine, [spec], collect_cfg, seed=derive_seed(seed, "eval", spec.name),
                                      opponent=opponent, learning_seats=SEATS)
                rollout = collector.collect(1)
                by_seat, unplayed = _split_by_policy_seat(rollout.records)
                seats = {}
                for seat in SEATS:
                    if not by_seat[seat]:
                        continue
                    agents = [policy, opp_agent] if seat == 0 else [opp_agent, policy]
                    turns = [s for s in rollout.samples if s.seat == seat]
                    seats[seat] = _seat_result(
                        summarize(spec.name, spec.params, agents, by_seat[seat]), seat,
                        response_len_mean=sum(len(s.completion_ids) for s in turns) / max(len(turns), 1),
                        truncated_rate=sum(s.truncated for s in turns) / max(len(turns), 1),
                    )  # fmt: skip
                report.games[spec.name].opponents[label] = MatchResult(seats, unplayed)
        finally:
            if opp_engine is not None:
                opp_engine.close()
    if eval_cfg.exploitability:
        for spec in specs:
            target = _exploitability_target(spec)
            if target is not None:
                result = model_exploitability(engine, template, sampling, samples=eval_cfg.exploitability_samples,
                                              target=target)
                if rollout_cfg.action_constraint == "choice":
                    # The policy played picks among the legal moves and never answers invalidly; the mass the
                    # model would put on other text when writing is not a property of it.
                    result = replace(result, invalid={})
                report.games[spec.name].exploitability = result
    return report


# -- any agent spec (the `spiral eval --games` entry point) -------------------------------------------


def game_report(
    agent_spec: str,
    eval_cfg: EvalConfig,
    rollout_cfg: RolloutConfig,
    *,
    seed: int,
    engine_kwargs: dict[str, Any] | None = None,
) -> GameReport:
    """Evaluate `agent_spec` (a model path, `builtin:NAME`, or a scripted agent spec) on games × opponents × seats.

    Models get an engine of `rollout_cfg.engine` (built with `engine_kwargs`) and play batched as in
    `evaluate_games`; scripted agents play arena matches in pure Python and report their exact exploitability
    (see `_exploitability_target`).
    """
    if is_model_spec(agent_spec):
        engine = create_engine(rollout_cfg.engine, agent_spec, **(engine_kwargs or {}))
        try:
            report = evaluate_games(engine, eval_cfg, rollout_cfg, seed=seed, name=opponent_label(agent_spec),
                                    engine_kwargs=engine_kwargs)
        finally:
            engine.close()
        report.agent = agent_spec
        return report
    return _scripted_report(agent_spec, make_agent(agent_spec, seed), eval_cfg, seed)


def _scripted_report(agent_spec: str, agent: Agent, eval_cfg: EvalConfig, seed: int) -> GameReport:
    episodes = eval_cfg.episodes
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    specs, labels = _game_specs(eval_cfg.games), _labels(eval_cfg.opponents)
    for opp_spec in eval_cfg.opponents:
        if is_model_spec(opp_spec):
            raise ValueError(f"opponent {opp_spec!r} is a model; scripted agents are evaluated against scripted opponents only")
    report = GameReport(agent_spec, {})
    for spec in specs:
        reason = _unsupported(agent, spec)
        if reason is not None:
            raise ValueError(f"agent {agent.name!r} cannot be evaluated on {spec.name}: {reason}")
        result = report.games[spec.name] = GameResult()
        for opp_spec, label in labels.items():
            opponent = make_agent(opp_spec, seed)
            reason = _unsupported(opponent, spec)
            if reason is not None:
                result.opponents[label] = Skipped(reason)
                continue
            result.opponents[label] = MatchResult({
                seat: _seat_result(
                    play_match(spec.name, spec.params, [agent, opponent] if seat == 0 else [opponent, agent], episodes, seed),
                    seat,
                )
                for seat in SEATS
            })
        target = _exploitability_target(spec) if eval_cfg.exploitability else None
        if target is not None:
            result.exploitability = policy_exploitability(agent.action_probabilities, target)
    return report
