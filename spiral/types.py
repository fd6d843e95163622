"""Plain data types that cross package lines (engine → collector → learner → eval).

Defined once here; packages import them rather than inventing their own shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SamplingSettings:
    """How an engine samples one batch of completions."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int | None = None


@dataclass
class EngineOutput:
    """One completion returned by an inference engine."""

    token_ids: list[int]
    text: str
    logprobs: list[float]  # log-prob of each sampled token under the sampling distribution
    finish_reason: str  # "stop" (end-of-sequence or stop string) or "length" (hit max_tokens)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@dataclass
class TurnSample:
    """One learning turn: a prompt, the policy's completion, and what it earned."""

    game: str
    seat: int
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]  # sampling log-probs, one per completion token
    ret: float  # final game return for this seat (discount 1.0)
    advantage: float = 0.0  # filled by RAE
    invalid: bool = False
    truncated: bool = False
    choices: list[list[int]] | None = None
    """With `rollout.action_constraint: choice`: the completion ids of every legal move; the move was
    sampled from the policy renormalised over these, and `logprobs` holds that one log-prob."""
    choice_index: int = -1
    """Index into `choices` of the move played."""
    version: int = 0
    """The policy version (learner updates applied) whose weights generated it; staleness is measured on it."""


@dataclass
class TurnRecord:
    """One move in a game transcript."""

    seat: int
    agent: str
    observation: str
    completion: str
    move: str | None  # None when the completion was not a legal move


@dataclass
class GameRecord:
    """A finished game: who played what, and how it ended."""

    game: str
    seed: int
    transcript: list[TurnRecord] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    end_reason: str = "terminal"  # terminal | invalid_move | turn_limit | context_overflow | game_error
    invalid_seat: int | None = None
    params: dict = field(default_factory=dict)
    """The game's constructor parameters: with `seed` and the moves, enough to replay it (e.g. for `spiral sft`)."""
