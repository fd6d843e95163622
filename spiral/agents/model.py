"""A model-backed `Agent`: one prompt → one completion per move, through any inference `Engine`.

For one game at a time (`spiral play`, the arena); batched self-play goes through the rollout collector.
"""

from __future__ import annotations

import math
import random

from spiral.agents.base import Agent
from spiral.games.base import Game
from spiral.rollout.choice import choice_logprobs, sample_move, scoring_temperature
from spiral.rollout.engine import Engine
from spiral.rollout.prompts import build_prompt
from spiral.types import EngineOutput, SamplingSettings

INVALID_PREFIX = "[invalid] "
"""Prefixed to a completion that names no legal move, so a caller applying it always sees an illegal move."""


class ModelAgent(Agent):
    """Prompts `engine` with `template` and plays the move in the completion's last `\\boxed{}`.

    Like the collector, a truncated completion is invalid even if it holds a box.
    """

    def __init__(self, engine: Engine, template: str, sampling: SamplingSettings, name: str = "model",
                 action_constraint: str = "none") -> None:
        self.engine = engine
        self.template = template
        self.sampling = sampling
        self.name = name
        self.action_constraint = action_constraint  # "choice": sample among legal moves, as in training
        self.last_output: EngineOutput | None = None  # the full completion behind the latest `act`

    def act(self, game: Game, rng: random.Random) -> str:
        """The legal move the model names, or the completion prefixed with `INVALID_PREFIX`."""
        prompt = build_prompt(game, game.current_player(), self.template, self.engine.tokenizer)
        if self.action_constraint == "choice":
            legal = game.legal_actions()
            temperature = self.sampling.temperature
            _, (logprobs,) = choice_logprobs(self.engine, [prompt], [legal], scoring_temperature(temperature))
            return legal[sample_move(logprobs, temperature, rng)]
        # The per-call seed comes from the caller's generator, so a seeded match replays exactly.
        sampling = SamplingSettings(self.sampling.temperature, self.sampling.top_p, self.sampling.max_tokens,
                                    seed=rng.getrandbits(31))
        out = self.engine.generate([prompt], sampling)[0]
        self.last_output = out
        move = None if out.truncated else game.parse_action(out.text)
        return move if move is not None else INVALID_PREFIX + out.text

    def action_probabilities(self, game: Game) -> dict[str, float]:
        """Probability of answering each legal move as exactly `\\boxed{move}` then end-of-sequence,
        renormalised over the legal moves (at the agent's temperature).

        Exact only for the `direct` template, where that is the answer the prompt asks for; reasoning
        templates have no closed form (estimate from sampled `act` calls instead).
        """
        if self.template != "direct":
            raise ValueError(f"exact action probabilities need the 'direct' template, not {self.template!r}")
        legal = game.legal_actions()
        prompt = build_prompt(game, game.current_player(), self.template, self.engine.tokenizer)
        _, (logprobs,) = choice_logprobs(self.engine, [prompt], [legal], scoring_temperature(self.sampling.temperature))
        return {a: math.exp(lp) for a, lp in zip(legal, logprobs)}
