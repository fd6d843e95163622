"""The `spiral` command: argument parsing and dispatch only.

Each subcommand lives in `spiral/commands/<name>.py` with `add_arguments(parser)` and `run(args) -> int`;
those modules import heavy libraries inside `run`, so `spiral --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "train": "Train a policy by self-play: spiral train CONFIG [key=value ...]",
    "sft": "Supervised fine-tuning on game transcripts: spiral sft CONFIG [key=value ...]",
    "config": "Inspect configs: spiral config show CONFIG [key=value ...]",
    "games": "List every registered game (name, players, parameters, source)",
    "arena": "Play agents (or models) against each other and report win rates",
    "play": "Play a game yourself in the terminal against an agent",
    "eval": "Evaluate a model/checkpoint/agent on games and math benchmarks",
    "report": "Write plots and a summary from a run directory",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spiral", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"spiral.commands.{name}")
        sp = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sp)
        sp.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from spiral.console import quiet_third_party

    quiet_third_party(getattr(args, "verbose", False))  # before any command imports transformers or DeepSpeed
    from spiral.config.schema import ConfigError
    from spiral.errors import SpiralError

    try:
        return int(args._module.run(args) or 0)
    except SpiralError as err:
        kind = "config error: " if isinstance(err, ConfigError) else "error: " if err.exit_code else ""
        print(f"spiral {args.command}: {kind}{err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
