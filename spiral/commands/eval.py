"""`spiral eval MODEL_OR_AGENT`: math/reasoning benchmarks for a model, and games for a model or a scripted agent."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from spiral.commands import add_generation_arguments, add_verbose

if TYPE_CHECKING:
    from spiral.eval.game_eval import GameReport


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()] if text else []


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from spiral.config.schema import EvalConfig

    evaluation = EvalConfig()
    parser.add_argument("agent", metavar="MODEL_OR_CHECKPOINT_OR_AGENT",
                        help="a hub id, a model/checkpoint directory, builtin:NAME, or a scripted agent (random, nash)")
    bench = parser.add_argument_group("benchmarks")
    bench.add_argument("--benchmarks", help="comma-separated: math500,aime24,aime25,amc23,gsm8k,minerva_math,"
                                            "olympiadbench,gpqa_diamond,mmlu_pro (template chat or qwen3_base)")
    bench.add_argument("--data-dir", help="directory of <benchmark>.jsonl files (default: the Hugging Face hub)")
    bench.add_argument("--samples", type=int, default=evaluation.samples,
                       help="completions per problem, for avg@k/pass@k/maj@k")
    bench.add_argument("--limit", type=int, default=0, help="first N problems of each benchmark (0: all)")
    bench.add_argument("--out", help="output directory (default runs/eval/<model name>); a rerun resumes there")
    games = parser.add_argument_group("games")
    games.add_argument("--games", help="comma-separated games, e.g. kuhn_poker,tic_tac_toe")
    games.add_argument("--opponents", default=",".join(evaluation.opponents),
                       help="comma-separated opponents (agents or model paths)")
    games.add_argument("--episodes", type=int, default=evaluation.episodes, help="games per (game, opponent, seat)")
    gen = parser.add_argument_group("generation")
    add_generation_arguments(gen)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--exploitability-samples", type=int, default=evaluation.exploitability_samples,
                     help="Kuhn exploitability: 0 scores the legal moves exactly; k samples k completions per info set")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    add_verbose(parser)


def _print_games(report: GameReport) -> None:
    from rich.console import Console
    from rich.table import Table

    from spiral.eval.game_eval import MatchResult

    table = Table("game", "opponent", "seat", "win", "loss", "draw", "invalid", "mean return",
                  title=f"{report.agent}: games")
    for game, result in report.games.items():
        for opponent, match in result.opponents.items():
            if not isinstance(match, MatchResult):
                continue
            for seat, view in sorted(match.seats.items()):
                table.add_row(game, opponent, str(seat), f"{view.win_rate:.1%}", f"{view.loss_rate:.1%}",
                              f"{view.draw_rate:.1%}", f"{view.invalid_rate:.1%}", f"{view.return_mean:+.3f}")
        if result.exploitability is not None:
            table.add_row(game, "exploitability", "", "", "", "", "", f"{result.exploitability.exploitability:.4f}")
    Console().print(table)


def run(args: argparse.Namespace) -> int:
    import json
    import pickle
    import sys

    from spiral.agents import is_model_spec
    from spiral.choices import BENCHMARK_TEMPLATES, one_of
    from spiral.types import SamplingSettings

    benchmarks, games = _names(args.benchmarks), _names(args.games)
    if not benchmarks and not games:
        print("spiral eval: nothing to evaluate; pass --benchmarks and/or --games", file=sys.stderr)
        return 2
    if benchmarks and not is_model_spec(args.agent):
        print(f"spiral eval: benchmarks need a model, and {args.agent!r} is a scripted agent", file=sys.stderr)
        return 2
    if benchmarks and args.template not in BENCHMARK_TEMPLATES:
        print(f"spiral eval: benchmarks take --template {one_of(BENCHMARK_TEMPLATES)}", file=sys.stderr)
        return 2
    sampling = SamplingSettings(temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens)
    engine_kwargs = {"dtype": args.dtype, "max_model_len": args.max_model_len, "seed": args.seed}
    output: dict = {}
    try:
        if games:
            from spiral.config.schema import EvalConfig, RolloutConfig
            from spiral.eval.game_eval import game_report

            eval_cfg = EvalConfig(games=games, opponents=_names(args.opponents), episodes=args.episodes,
                                  exploitability_samples=args.exploitability_samples, temperature=args.temperature,
                                  top_p=args.top_p, max_tokens=args.max_tokens)
            rollout_cfg = RolloutConfig(engine=args.engine, template=args.template,
                                        action_constraint=args.action_constraint)
            report = game_report(args.agent, eval_cfg, rollout_cfg, seed=args.seed, engine_kwargs=engine_kwargs)
            output["games"] = report.to_dict()["games"]
            if not args.json:
                _print_games(report)
        if benchmarks:
            from spiral.eval.bench_runner import run_benchmarks
            from spiral.rollout.engine_factory import create_engine

            out = Path(args.out or Path("runs") / "eval" / Path(args.agent.rstrip("/")).name.replace(":", "_"))
            engine = create_engine(args.engine, args.agent, **engine_kwargs)
            try:
                output["benchmarks"] = run_benchmarks(
                    engine, benchmarks, data_dir=args.data_dir, samples=args.samples, sampling=sampling,
                    out_dir=out, limit=args.limit, template=args.template, model=args.agent, verbose=not args.json,
                )  # fmt: skip
            finally:
                engine.close()
            if not args.json:
                print(f"\nper-sample records and results.json in {out}")
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"spiral eval: {err}", file=sys.stderr)
        return 2
    except pickle.UnpicklingError as err:  # transformers reads .bin weights weights-only and refused this one
        from spiral.learner.safe_load import pickled_model_message

        models = [spec for spec in [args.agent, *_names(args.opponents)] if is_model_spec(spec)]
        print(f"spiral eval: {pickled_model_message(' or '.join(models), err)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(output, default=str))
    return 0
