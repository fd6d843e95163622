"""`spiral eval MODEL_OR_AGENT`: math/reasoning benchmarks for a model, and games for a model or a scripted agent."""

from __future__ import annotations

import argparse
from pathlib import Path


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()] if text else []


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("agent", metavar="MODEL_OR_CHECKPOINT_OR_AGENT",
                        help="a hub id, a model/checkpoint directory, builtin:NAME, or a scripted agent (random, nash)")
    bench = parser.add_argument_group("benchmarks")
    bench.add_argument("--benchmarks", help="comma-separated: math500,aime24,aime25,amc23,gsm8k,minerva_math,"
                                            "olympiadbench,gpqa_diamond,mmlu_pro")
    bench.add_argument("--data-dir", help="directory of <benchmark>.jsonl files (default: the Hugging Face hub)")
    bench.add_argument("--samples", type=int, default=1, help="completions per problem, for avg@k/pass@k/maj@k")
    bench.add_argument("--limit", type=int, default=0, help="first N problems of each benchmark (0: all)")
    bench.add_argument("--out", help="output directory (default runs/eval/<model name>); a rerun resumes there")
    games = parser.add_argument_group("games")
    games.add_argument("--games", help="comma-separated games, e.g. kuhn_poker,tic_tac_toe")
    games.add_argument("--opponents", default="random", help="comma-separated opponents (agents or model paths)")
    games.add_argument("--episodes", type=int, default=64, help="games per (game, opponent, seat)")
    gen = parser.add_argument_group("generation")
    gen.add_argument("--temperature", type=float, default=0.6)
    gen.add_argument("--top-p", type=float, default=0.95)
    gen.add_argument("--max-tokens", type=int, default=4096, help="generation budget per completion")
    gen.add_argument("--template", default="chat", choices=["chat", "qwen3_base", "direct"],
                     help="prompt format: the tokenizer's chat template, or raw Qwen3 im_start for base models "
                          "(direct: games only)")
    gen.add_argument("--engine", default="hf", choices=["hf", "vllm"], help="inference engine")
    gen.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    gen.add_argument("--max-model-len", type=int, default=8192, help="context length of the engine")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--action-constraint", default="none", choices=["none", "choice"],
                     help="games: choice plays the model's renormalised probabilities of the legal moves (as training did)")
    gen.add_argument("--exploitability-samples", type=int, default=0,
                     help="Kuhn exploitability: 0 scores the legal moves exactly; k samples k completions per info set")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def _print_games(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("game", "opponent", "seat", "win", "loss", "draw", "invalid", "mean return",
                  title=f"{report['agent']}: games")
    for game, entries in report["games"].items():
        for opponent, entry in entries.items():
            if not isinstance(entry, dict) or "skipped" in entry:
                continue
            for seat, view in entry.items():
                if not seat.startswith("seat"):
                    continue
                table.add_row(game, opponent, seat[4:], f"{view['win_rate']:.1%}", f"{view['loss_rate']:.1%}",
                              f"{view['draw_rate']:.1%}", f"{view['invalid_rate']:.1%}", f"{view['return_mean']:+.3f}")
        if "exploitability" in entries:
            table.add_row(game, "exploitability", "", "", "", "", "", f"{entries['exploitability']:.4f}")
    Console().print(table)


def run(args: argparse.Namespace) -> int:
    import json
    import pickle
    import sys

    from spiral.agents import is_model_spec
    from spiral.types import SamplingSettings

    benchmarks, games = _names(args.benchmarks), _names(args.games)
    if not benchmarks and not games:
        print("spiral eval: nothing to evaluate; pass --benchmarks and/or --games", file=sys.stderr)
        return 2
    if benchmarks and not is_model_spec(args.agent):
        print(f"spiral eval: benchmarks need a model, and {args.agent!r} is a scripted agent", file=sys.stderr)
        return 2
    if benchmarks and args.template == "direct":
        print("spiral eval: benchmarks take --template chat or qwen3_base", file=sys.stderr)
        return 2
    sampling = SamplingSettings(temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens)
    engine_kwargs = {"dtype": args.dtype, "max_model_len": args.max_model_len, "seed": args.seed}
    output: dict = {}
    try:
        if games:
            from spiral.eval.game_eval import game_report

            report = game_report(
                args.agent, games, _names(args.opponents), args.episodes, args.seed, args.engine,
                template=args.template, sampling=sampling, engine_kwargs=engine_kwargs,
                exploitability_samples=args.exploitability_samples, action_constraint=args.action_constraint,
            )  # fmt: skip
            output["games"] = report["games"]
            if not args.json:
                _print_games(report)
        if benchmarks:
            from spiral.eval.bench_runner import run_benchmarks
            from spiral.rollout.engines import create_engine

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
