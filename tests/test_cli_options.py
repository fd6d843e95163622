"""Options defined once: the CLI's defaults come from the config dataclasses, its choices from `spiral.choices`."""

from __future__ import annotations

import pytest

from spiral.choices import ACTION_CONSTRAINTS, DTYPES, ENGINES, TEMPLATES
from spiral.cli import build_parser
from spiral.config.schema import ConfigError, EvalConfig, ModelConfig, RolloutConfig, TrainerConfig


def _defaults(*argv: str) -> dict:
    return vars(build_parser().parse_args(list(argv)))


@pytest.mark.parametrize("argv", [("eval", "builtin:tiny"), ("arena", "kuhn_poker", "--agents", "nash,random")])
def test_model_options_default_to_the_config_dataclasses(argv) -> None:
    args, model, rollout, evaluation = _defaults(*argv), ModelConfig(), RolloutConfig(), EvalConfig()
    assert args["max_model_len"] == model.max_model_len and args["dtype"] == model.dtype
    assert (args["engine"], args["template"], args["action_constraint"]) == (
        rollout.engine, rollout.template, rollout.action_constraint)
    assert (args["temperature"], args["top_p"], args["max_tokens"]) == (
        evaluation.temperature, evaluation.top_p, evaluation.max_tokens)


def test_eval_and_arena_agree_on_every_shared_default() -> None:
    evaluate = _defaults("eval", "builtin:tiny")
    arena = _defaults("arena", "kuhn_poker", "--agents", "nash,random")
    shared = {"engine", "template", "action_constraint", "temperature", "top_p", "max_tokens", "max_model_len",
              "dtype"}
    assert {k: evaluate[k] for k in shared} == {k: arena[k] for k in shared}


def _choices(command: list[str], dest: str) -> tuple:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command[0]]
    return tuple(next(a for a in sub._actions if a.dest == dest).choices)


@pytest.mark.parametrize("command", [["eval"], ["arena"]])
def test_cli_choices_are_the_ones_the_config_accepts(command) -> None:
    assert _choices(command, "engine") == ENGINES
    assert _choices(command, "template") == TEMPLATES
    assert _choices(command, "dtype") == DTYPES
    assert _choices(command, "action_constraint") == ACTION_CONSTRAINTS
    for engine in ENGINES:
        RolloutConfig(engine=engine)
    for dtype in DTYPES:
        ModelConfig(dtype=dtype)
    for constraint in ACTION_CONSTRAINTS:
        RolloutConfig(action_constraint=constraint)
    for template in TEMPLATES:
        RolloutConfig(template=template)


def test_a_value_outside_the_choices_is_refused_with_the_choices_named() -> None:
    with pytest.raises(ConfigError, match="rollout.engine must be hf or vllm, not 'sglang'"):
        RolloutConfig(engine="sglang")
    with pytest.raises(ConfigError, match="trainer.logprob_backend must be auto, torch or triton"):
        TrainerConfig(logprob_backend="cuda")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "builtin:tiny", "--engine", "sglang"])
