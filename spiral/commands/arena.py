"""`spiral arena GAME --agents A,B`: play agents against each other and print per-seat results."""

from __future__ import annotations

import argparse
from typing import Any

from spiral.commands import add_generation_arguments, add_verbose


def parse_params(items: list[str]) -> dict[str, Any]:
    """`key=value` pairs to game parameters; values are read as YAML scalars (`3`, `true`, `x`)."""
    import yaml

    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--param expects key=value, got {item!r}")
        params[key] = yaml.safe_load(value)
    return params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("game", help="game name (see `spiral games`) or package.module:Class")
    parser.add_argument("--agents", required=True, help="comma-separated agents, one per seat, e.g. nash,random")
    parser.add_argument("--games", type=int, default=100, help="number of games (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="game k uses seed SEED+k")
    parser.add_argument("--param", action="append", default=[], metavar="K=V", help="game parameter (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--transcripts", metavar="FILE", help="also write every game to this JSONL file "
                        "(the format `spiral train` writes; `spiral sft` reads it)")
    add_verbose(parser)
    model = parser.add_argument_group("model agents (a checkpoint's model/ directory, a hub id or builtin:tiny)")
    add_generation_arguments(model)

def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from spiral.agents.arena import play_games, summarize
    from spiral.games import GameNotFound
    from spiral.rollout.collector import write_transcripts

    engines: list = []
    try:
        agents = [_make_agent(spec.strip(), args, engines) for spec in args.agents.split(",")]
        params = parse_params(args.param)
        records = play_games(args.game, params, agents, args.games, args.seed)
        result = summarize(args.game, params, agents, records)
    except (ValueError, GameNotFound) as err:
        print(f"spiral arena: {err}", file=sys.stderr)
        return 2
    finally:
        for engine in engines:
            engine.close()
    if args.transcripts:
        write_transcripts(records, args.transcripts)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("seat", "agent", "mean return", "win", "loss", "draw", "invalid",
                  title=f"{result.game}: {result.games} games, mean length {result.mean_length:.2f} moves")
    for seat, agent in enumerate(result.agents):
        table.add_row(
            str(seat), agent, f"{result.mean_return[seat]:+.3f} ± {result.stderr_return[seat]:.3f}",
            f"{result.win_rate[seat]:.1%}", f"{result.loss_rate[seat]:.1%}", f"{result.draw_rate[seat]:.1%}",
            f"{result.invalid_rate[seat]:.1%}",
        )  # fmt: skip
    Console().print(table)
    return 0


def _make_agent(spec: str, args: argparse.Namespace, engines: list):
    """A scripted agent, or a model served by a fresh engine (appended to `engines` for closing); the engines of
    the second and later model agents are secondary (see `create_engine`)."""
    from spiral.agents import is_model_spec, make_agent

    if not is_model_spec(spec):
        return make_agent(spec, seed=args.seed)
    from spiral.agents.model import ModelAgent
    from spiral.eval.game_eval import opponent_label
    from spiral.rollout.engine_factory import create_engine
    from spiral.types import SamplingSettings

    engine = create_engine(args.engine, spec, secondary=bool(engines), dtype=args.dtype,
                           max_model_len=args.max_model_len, seed=args.seed)
    engines.append(engine)
    sampling = SamplingSettings(temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens)
    return ModelAgent(engine, args.template, sampling, name=opponent_label(spec),
                      action_constraint=args.action_constraint)
