"""One module per `spiral` subcommand: `add_arguments(parser)` and `run(args) -> int`."""

from __future__ import annotations

import argparse


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """`-v/--verbose`: show third-party output (DeepSpeed op builds, transformers' loading/writing bars)."""
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show third-party output too (DeepSpeed op builds, transformers progress bars, "
                             "vLLM info logs); hidden by default")


def add_generation_arguments(group: argparse._ActionsContainer) -> None:
    """The model-agent options `spiral eval` and `spiral arena` share; defaults and choices come from the
    config dataclasses and `spiral.choices`, as they do for `spiral train`."""
    from spiral.choices import ACTION_CONSTRAINTS, DTYPES, ENGINES, TEMPLATES
    from spiral.config.schema import EvalConfig, ModelConfig, RolloutConfig

    model, rollout, evaluation = ModelConfig(), RolloutConfig(), EvalConfig()
    group.add_argument("--engine", default=rollout.engine, choices=ENGINES, help="inference engine")
    group.add_argument("--template", default=rollout.template, choices=TEMPLATES,
                       help="prompt format: the tokenizer's chat template, raw Qwen3 im_start for base models, or "
                            "direct (answer with the boxed move at once; games only)")
    group.add_argument("--action-constraint", default=rollout.action_constraint, choices=ACTION_CONSTRAINTS,
                       help="games: choice plays the model's renormalised probabilities of the legal moves "
                            "(as training did)")
    group.add_argument("--temperature", type=float, default=evaluation.temperature, help="sampling temperature")
    group.add_argument("--top-p", type=float, default=evaluation.top_p, help="nucleus sampling")
    group.add_argument("--max-tokens", type=int, default=evaluation.max_tokens,
                       help="generation budget per completion")
    group.add_argument("--max-model-len", type=int, default=model.max_model_len, help="context length of the engine")
    group.add_argument("--dtype", default=model.dtype, choices=DTYPES, help="weights dtype")
