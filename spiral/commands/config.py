"""`spiral config show CONFIG [overrides]`: print the fully resolved config as YAML."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["show"], help="show: print the resolved config")
    parser.add_argument("config", help="YAML config file")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.lr=2e-6")


def run(args: argparse.Namespace) -> int:
    from spiral.config import load_config, to_yaml

    print(to_yaml(load_config(args.config, args.overrides)), end="")
    return 0
