"""`spiral games`: list every registered game, in-tree and from installed plugins."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    import json

    from spiral.games import list_games

    infos = list_games()
    if args.json:
        print(json.dumps([vars(i) for i in infos], default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("game", "players", "parameters", "source")
    for info in infos:
        params = ", ".join(f"{k}={v!r}" for k, v in info.params.items())
        table.add_row(info.name, str(info.players), params, info.source)
    Console().print(table)
    return 0
