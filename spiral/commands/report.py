"""`spiral report RUN_DIR`: plots and a markdown summary of a run's metrics, written to RUN_DIR/report/."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory holding metrics.jsonl")


def run(args: argparse.Namespace) -> int:
    import sys

    from spiral.eval.report import write_report

    try:
        out = write_report(args.run_dir)
    except (FileNotFoundError, ValueError) as err:
        print(f"spiral report: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'summary.md'} and plots in {out}")
    return 0
