"""Constrained moves (`rollout.action_constraint: choice`): the policy's probabilities of the legal moves.

Each legal move is scored as the completion `\\boxed{move}` + end-of-sequence; the log-probs are
renormalised over the legal moves; `sample_move` plays one. Used by the collector, `ModelAgent` and the
exploitability read-out.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from spiral.rollout.engine import Engine


def boxed_move_ids(tokenizer: PreTrainedTokenizerBase, move: str) -> list[int]:
    """Token ids of the completion that answers exactly `move`: `\\boxed{move}` then end-of-sequence."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos token, so a complete answer cannot be scored")
    return tokenizer.encode(f"\\boxed{{{move}}}", add_special_tokens=False) + [tokenizer.eos_token_id]


def choice_scores(
    engine: Engine, prompts: list[list[int]], moves: list[list[str]], temperature: float
) -> tuple[list[list[list[int]]], list[list[float]]]:
    """For each prompt and its legal `moves`: the moves' completion ids and their total log-probs
    (sums of token log-probs at `temperature`, not renormalised), in one `engine.score` call."""
    choices = [[boxed_move_ids(engine.tokenizer, m) for m in legal] for legal in moves]
    flat_prompts = [p for p, options in zip(prompts, choices) for _ in options]
    scores = iter(engine.score(flat_prompts, [c for options in choices for c in options], temperature))
    return choices, [[math.fsum(next(scores)) for _ in options] for options in choices]


def log_normalise(totals: list[float]) -> list[float]:
    """Log-probs renormalised over the given options (log-space, so tiny sequence probabilities don't underflow)."""
    top = max(totals)
    log_z = top + math.log(sum(math.exp(t - top) for t in totals))
    return [t - log_z for t in totals]


def choice_logprobs(
    engine: Engine, prompts: list[list[int]], moves: list[list[str]], temperature: float
) -> tuple[list[list[list[int]]], list[list[float]]]:
    """Like `choice_scores`, with each prompt's log-probs renormalised over its legal moves."""
    choices, totals = choice_scores(engine, prompts, moves, temperature)
    return choices, [log_normalise(t) for t in totals]


def scoring_temperature(temperature: float) -> float:
    """The temperature the legal moves are scored at: the sampling one, or 1 for greedy play (temperature 0
    picks the most likely move, whose rank no temperature changes)."""
    return temperature if temperature > 0 else 1.0


def sample_move(logprobs: list[float], temperature: float, rng: random.Random) -> int:
    """The index of the move played from renormalised legal-move log-probs: drawn by their probabilities with
    `rng`, or the most likely one at temperature 0."""
    if temperature > 0:
        return rng.choices(range(len(logprobs)), weights=[math.exp(lp) for lp in logprobs])[0]
    return max(range(len(logprobs)), key=logprobs.__getitem__)
