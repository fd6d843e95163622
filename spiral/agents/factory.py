"""`make_agent`: turn an agent spec string (`random`, `nash:alpha=0.2`, `minimax`) into an `Agent`.

Specs that name a model (`builtin:tiny`, a path, a hub id) belong to the model-backed agent, not here.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable

from spiral.agents.base import Agent
from spiral.agents.cfr import CFRAgent
from spiral.agents.scripted import KuhnNashAgent, MinimaxAgent, RandomAgent

SCRIPTED: dict[str, Callable[..., Agent]] = {
    "random": RandomAgent,
    "nash": KuhnNashAgent,
    "minimax": MinimaxAgent,
    "cfr": CFRAgent,
}


def is_model_spec(spec: str) -> bool:
    """True for specs that name a model rather than a scripted agent: `builtin:NAME`, paths, hub ids.

    A scripted agent's name always means the agent, even where a folder of that name exists (write
    `./random` for such a folder)."""
    if spec.strip().partition(":")[0] in SCRIPTED:
        return False
    return spec.startswith("builtin:") or "/" in spec or os.sep in spec or os.path.exists(spec)


def check_agent_spec(spec: str) -> None:
    """Raise ValueError saying what is wrong with an agent or model spec, before anything is built."""
    if is_model_spec(spec):
        from spiral.models.builtin import check_model_path

        check_model_path(spec)
    else:
        make_agent(spec)


def _parse_options(name: str, text: str) -> dict[str, float]:
    options: dict[str, float] = {}
    for item in filter(None, text.split(";")):
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            options[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"agent {name!r}: option {item!r} must look like key=number") from None
    return options


def make_agent(spec: str, seed: int = 0) -> Agent:
    """A scripted agent from `NAME` or `NAME:key=value;key=value` (e.g. `nash:alpha=0.2`).

    `seed` is for agents that sample internally (model-backed ones); scripted agents sample with the
    generator the caller passes to `act`, so they ignore it.
    """
    if is_model_spec(spec):
        raise ValueError(
            f"agent {spec!r} names a model; model agents need an inference engine and are not available "
            "through make_agent"
        )
    name, _, option_text = spec.strip().partition(":")
    if name not in SCRIPTED:
        close = difflib.get_close_matches(name, SCRIPTED, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown agent {spec!r}.{hint} Known agents: {', '.join(SCRIPTED)} (or a model path)")
    try:
        return SCRIPTED[name](**_parse_options(name, option_text))
    except TypeError as err:
        raise ValueError(f"bad options for agent {name!r}: {err}") from None
