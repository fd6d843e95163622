"""Agents that play games: the `Agent` interface, scripted agents, `make_agent` and the arena."""

from spiral.agents.base import Agent, UnsupportedGameError
from spiral.agents.factory import SCRIPTED, is_model_spec, make_agent
from spiral.agents.scripted import KuhnNashAgent, MinimaxAgent, RandomAgent

__all__ = [
    "SCRIPTED",
    "Agent",
    "KuhnNashAgent",
    "MinimaxAgent",
    "RandomAgent",
    "UnsupportedGameError",
    "is_model_spec",
    "make_agent",
]
