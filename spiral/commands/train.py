"""`spiral train CONFIG [key=value ...]`: run self-play training (also under torchrun)."""

from __future__ import annotations

import argparse

from spiral.commands import add_verbose


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config file, e.g. configs/kuhn_tiny.yaml")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.lr=2e-6 run.seed=3")
    add_verbose(parser)


def run(args: argparse.Namespace) -> int:
    from spiral.config import load_config

    cfg = load_config(args.config, args.overrides)  # fails here, before anything heavy starts
    from spiral.models import resolve_model_path
    from spiral.preflight import check_games_conform, check_prompts_fit

    check_games_conform(cfg)  # still nothing written: a broken game or a too-short context is refused here
    check_prompts_fit(cfg, resolve_model_path(cfg.model.path, seed=cfg.run.seed))
    from spiral.rundir import locked_run_dir
    from spiral.train import train

    with locked_run_dir(cfg.run.dir):
        train(cfg)
    return 0
