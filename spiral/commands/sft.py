"""`spiral sft CONFIG [key=value ...]`: supervised fine-tuning on game transcripts (also under torchrun)."""

from __future__ import annotations

import argparse
import sys

from spiral.commands import add_verbose


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config file with an `sft:` section, e.g. configs/sft_kuhn_tiny.yaml")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. sft.filter=winners trainer.steps=200")
    add_verbose(parser)


def run(args: argparse.Namespace) -> int:
    from spiral.config import load_config

    cfg = load_config(args.config, args.overrides)  # fails here, before anything heavy starts
    from spiral.rundir import locked_run_dir
    from spiral.sft.loop import sft

    with locked_run_dir(cfg.run.dir):
        model = sft(cfg)
    print(f"spiral sft: model written to {model}", file=sys.stderr)
    return 0
