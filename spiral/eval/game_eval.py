"""Game evaluation: a policy against opponents on each game and seat, plus exact exploitability (Kuhn Poker and
small `openspiel:<game>` games).

Models play through the batched collector (all games of a seat share each generate call); scripted agents
play through the arena. Results are plain JSON-ready dicts; `flatten_for_logging` turns them into metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spiral.agents import Agent, UnsupportedGameError, is_model_spec, make_agent
from spiral.agents.arena import ArenaResult, play_match, summarize
from spiral.agents.model import ModelAgent
from spiral.config.schema import EvalConfig, GameSpec, RolloutConfig
from spiral.eval.exploitability import (
    PolicyTarget,
    exploitability_target,
    kuhn_target,
    model_exploitability,
    policy_exploitability,
)
from spiral.games import make_game
from spiral.rollout.collector import POLICY, Collector, derive_seed
from spiral.rollout.engine import Engine
from spiral.rollout.engines import create_engine
from spiral.types import GameRecord, SamplingSettings

log = logging.getLogger(__name__)

KUHN = "kuhn_poker"
SEATS = (0, 1)
LOGGED_POLICY_SETS = 24
"""`flatten_for_logging` logs the read-out policy itself only for games with at most this many information sets."""
# Per-seat metrics that are averages over games, so seats combine by a games-weighted mean.
_MEAN_METRICS = ("return_mean", "win_rate", "loss_rate", "draw_rate", "invalid_rate", "opponent_invalid_rate",
                 "length_mean", "response_len_mean", "truncated_rate")


def default_sampling() -> SamplingSettings:
    """The eval sampling settings of `EvalConfig` (temperature 0.6, top-p 0.95)."""
    cfg = EvalConfig()
    return SamplingSettings(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens)


def opponent_label(spec: str) -> str:
    """The name an opponent goes by in reports and metric keys: agent specs as given, a model path's last part."""
    return Path(spec.rstrip("/\\")).name if is_model_spec(spec) and not spec.startswith("builtin:") else spec


def _game_specs(games: Sequence[str | GameSpec]) -> list[GameSpec]:
    specs = [g if isinstance(g, GameSpec) else GameSpec(name=g) for g in games]
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


def _seat_view(result: ArenaResult, seat: int) -> dict[str, float]:
    """One seat's results from an arena summary: its own rates, and the opponent's invalid moves."""
    return {
        "games": float(result.games),
        "return_mean": result.mean_return[seat],
        "return_stderr": result.stderr_return[seat],
        "win_rate": result.win_rate[seat],
        "loss_rate": result.loss_rate[seat],
        "draw_rate": result.draw_rate[seat],
        "invalid_rate": result.invalid_rate[seat],
        "opponent_invalid_rate": result.invalid_rate[1 - seat],
        "length_mean": result.mean_length,
    }


def _split_by_policy_seat(records: list[GameRecord]) -> tuple[dict[int, list[GameRecord]], int]:
    """Collector records grouped by the seat the policy played, and the count of games nobody moved in.

    The first move tells: the policy's seat if the policy made it, else the other seat (two seats).
    Games with no move at all (the first prompt overflowed the context) cannot be attributed and are
    only counted.
    """
    by_seat: dict[int, list[GameRecord]] = {seat: [] for seat in SEATS}
    unplayed = 0
    for record in records:
        if not record.transcript:
            unplayed += 1
            continue
        turn = record.transcript[0]
        by_seat[turn.seat if turn.agent == POLICY else 1 - turn.seat].append(record)
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


# -- a model policy ---------------------------------------------------------------------------------


def evaluate_games(
    engine: Engine,
    games: Sequence[str | GameSpec],
    opponents: Sequence[str],
    *,
    episodes: int,
    seed: int,
    template: str,
    sampling: SamplingSettings,
    exploitability: bool = True,
    exploitability_samples: int = 0,
    engine_kind: str = "hf",
    engine_kwargs: dict[str, Any] | None = None,
    name: str = "policy",
    action_constraint: str = "none",
    opponent_engines: Mapping[str, Engine] | None = None,
) -> dict[str, Any]:
    """Play the model behind `engine` against each opponent in each seat of each game, `episodes` games a seat.

    Opponents are agent specs (`random`, `nash:alpha=0.1`, ...) or model paths (checkpoints, hub ids,
    `builtin:NAME`). A model opponent plays through its engine in `opponent_engines` (the caller's, left open)
    or else through a fresh secondary `engine_kind` engine built with `engine_kwargs` and closed after use.
    Scripted opponents that cannot play a game are skipped with the reason. With `exploitability`,
    kuhn_poker and small openspiel:<game> games also get the exact exploitability of the model's policy
    (see `model_exploitability`).
    `action_constraint` is the rollout setting of the same name: `choice` plays the model's renormalised
    distribution over legal moves, as training does.
    """

    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    specs, labels = _game_specs(games), _labels(opponents)
    rollout_cfg = RolloutConfig(
        engine=engine_kind,
        concurrent_games=len(SEATS) * episodes,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        max_tokens=sampling.max_tokens,
        template=template,
        action_constraint=action_constraint,
    )
    policy = ModelAgent(engine, template, sampling, name=name)
    report: dict[str, Any] = {spec.name: {} for spec in specs}
    given = opponent_engines or {}
    for opp_spec, label in labels.items():
        opp_engine = None
        if is_model_spec(opp_spec) and opp_spec not in given:
            opp_engine = create_engine(engine_kind, opp_spec, secondary=True, **(engine_kwargs or {}))
        try:
            opponent: Engine | Agent = given.get(opp_spec) or opp_engine or make_agent(opp_spec, seed)
            # The opponent's name in transcripts and arena summaries.
            opp_agent = opponent if isinstance(opponent, Agent) else ModelAgent(opponent, template, sampling, name=label)
            for spec in specs:
                reason = _unsupported(opponent, spec) if isinstance(opponent, Agent) else None
                if reason is not None:
                    log.warning("skipping opponent %s on %s: %s", label, spec.name, reason)
                    report[spec.name][label] = {"skipped": reason}
                    continue
                # One collector for both seats (games alternate seat 0, 1), so every generate call serves
                # all live games. A budget of one learning turn starts exactly 2 * episodes games: they all
                # start before the first generate, and the budget is met once any game reaches the model.
                collector = Collector(engine, [spec], rollout_cfg, seed=derive_seed(seed, "eval", spec.name),
                                      opponent=opponent, learning_seats=SEATS)
                rollout = collector.collect(1)
                by_seat, unplayed = _split_by_policy_seat(rollout.records)
                seats = {}
                for seat in SEATS:
                    if not by_seat[seat]:
                        seats[f"seat{seat}"] = {"games": 0.0}
                        continue
                    agents = [policy, opp_agent] if seat == 0 else [opp_agent, policy]
                    view = _seat_view(summarize(spec.name, spec.params, agents, by_seat[seat]), seat)
                    turns = [s for s in rollout.samples if s.seat == seat]
                    view["response_len_mean"] = sum(len(s.completion_ids) for s in turns) / max(len(turns), 1)
                    view["truncated_rate"] = sum(s.truncated for s in turns) / max(len(turns), 1)
                    seats[f"seat{seat}"] = view
                if unplayed:
                    seats["unplayed"] = unplayed
                report[spec.name][label] = seats
        finally:
            if opp_engine is not None:
                opp_engine.close()
    for spec in specs:
        target = _exploitability_target(spec) if exploitability else None
        if target is not None:
            result = model_exploitability(engine, template, sampling, samples=exploitability_samples, target=target)
            report[spec.name]["exploitability"] = result.exploitability
            report[spec.name]["exploitability_detail"] = result.to_dict()
    return {"games": report}


# -- any agent spec (the `spiral eval --games` entry point) -------------------------------------------


def game_report(
    agent_spec: str,
    games: Sequence[str | GameSpec],
    opponents: Sequence[str],
    episodes: int,
    seed: int,
    engine_kind: str = "hf",
    template: str = "chat",
    sampling: SamplingSettings | None = None,
    exploitability_samples: int = 0,
    engine_kwargs: dict[str, Any] | None = None,
    exploitability: bool = True,
    action_constraint: str = "none",
) -> dict[str, Any]:
    """Evaluate `agent_spec` (a model path, `builtin:NAME`, or a scripted agent spec) on games × opponents × seats.

    Models get an engine of `engine_kind` and play batched with `sampling` (default: the eval settings);
    scripted agents play arena matches in pure Python and report their exact exploitability (see `_exploitability_target`).
    Result: `{"agent": spec, "games": {game: {opponent: {"seat0": {...}, "seat1": {...}}, "exploitability": x}}}`.
    """
    sampling = sampling or default_sampling()
    if is_model_spec(agent_spec):
        engine = create_engine(engine_kind, agent_spec, **(engine_kwargs or {}))
        try:
            report = evaluate_games(
                engine, games, opponents, episodes=episodes, seed=seed, template=template, sampling=sampling,
                exploitability=exploitability, exploitability_samples=exploitability_samples,
                engine_kind=engine_kind, engine_kwargs=engine_kwargs, name=opponent_label(agent_spec),
                action_constraint=action_constraint,
            )  # fmt: skip
        finally:
            engine.close()
        return {"agent": agent_spec, **report}
    return {"agent": agent_spec, **_scripted_report(make_agent(agent_spec, seed), games, opponents, episodes, seed,
                                                    exploitability)}


def _scripted_report(agent: Agent, games: Sequence[str | GameSpec], opponents: Sequence[str], episodes: int, seed: int,
                     exploitability: bool) -> dict[str, Any]:
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    specs, labels = _game_specs(games), _labels(opponents)
    for spec in opponents:
        if is_model_spec(spec):
            raise ValueError(f"opponent {spec!r} is a model; scripted agents are evaluated against scripted opponents only")
    report: dict[str, Any] = {}
    for spec in specs:
        reason = _unsupported(agent, spec)
        if reason is not None:
            raise ValueError(f"agent {agent.name!r} cannot be evaluated on {spec.name}: {reason}")
        report[spec.name] = {}
        for opp_spec, label in labels.items():
            opponent = make_agent(opp_spec, seed)
            reason = _unsupported(opponent, spec)
            if reason is not None:
                report[spec.name][label] = {"skipped": reason}
                continue
            report[spec.name][label] = {
                f"seat{seat}": _seat_view(
                    play_match(spec.name, spec.params, [agent, opponent] if seat == 0 else [opponent, agent], episodes, seed),
                    seat,
                )
                for seat in SEATS
            }
        target = _exploitability_target(spec) if exploitability else None
        if target is not None:
            result = policy_exploitability(agent.action_probabilities, target)
            report[spec.name]["exploitability"] = result.exploitability
            report[spec.name]["exploitability_detail"] = result.to_dict()
    return {"games": report}


# -- metrics for loggers -----------------------------------------------------------------------------


def flatten_for_logging(report: dict[str, Any]) -> dict[str, float]:
    """`eval/<game>/<opponent>/<metric>` (seats combined, games-weighted), `.../seat<i>/<metric>`, and
    `eval/<game>/{exploitability,nash_conv,exploitability_invalid}` and, for games with few information sets
    (Kuhn), the read-out policy `eval/kuhn_poker/policy/<information set>/<move>` from an `evaluate_games` report."""
    flat: dict[str, float] = {}
    for game, entries in report["games"].items():
        for label, entry in entries.items():
            if label == "exploitability":
                flat[f"eval/{game}/exploitability"] = float(entry)
            elif label == "exploitability_detail":
                flat[f"eval/{game}/nash_conv"] = float(entry["nash_conv"])
                flat[f"eval/{game}/exploitability_invalid"] = float(entry["invalid_mean"])
                # The tabular policy itself (Kuhn has 12 information sets): eval/kuhn_poker/policy/1pb/call.
                logged = entry["policy"] if len(entry["policy"]) <= LOGGED_POLICY_SETS else {}
                for infoset, probs in logged.items():
                    for move, prob in probs.items():
                        flat[f"eval/{game}/policy/{infoset}/{move}"] = float(prob)
            elif "skipped" not in entry:
                prefix = f"eval/{game}/{label}"
                seats = [entry[f"seat{s}"] for s in SEATS]
                flat[f"{prefix}/games"] = sum(v["games"] for v in seats)
                if "unplayed" in entry:
                    flat[f"{prefix}/unplayed"] = float(entry["unplayed"])
                for metric in _MEAN_METRICS:
                    played = [v for v in seats if metric in v]
                    if played:
                        flat[f"{prefix}/{metric}"] = sum(v[metric] * v["games"] for v in played) / sum(v["games"] for v in played)
                for s, view in zip(SEATS, seats):
                    for metric, value in view.items():
                        flat[f"{prefix}/seat{s}/{metric}"] = float(value)
    return flat
