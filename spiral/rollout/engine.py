"""The inference-engine interface the actor, evaluators and weight sync program against.

Implementations: `hf_engine.HFEngine` (transformers generate) and `vllm_engine.VLLMEngine` (in-process vLLM);
`engine_factory` builds them. The input checks every implementation shares live here too.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import TYPE_CHECKING

from spiral.types import EngineOutput, SamplingSettings

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase


class Engine(abc.ABC):
    """Generates completions for batches of token-id prompts from one policy's current weights."""

    tokenizer: PreTrainedTokenizerBase
    max_model_len: int

    @abc.abstractmethod
    def generate(self, prompts: list[list[int]], sampling: SamplingSettings) -> list[EngineOutput]:
        """One completion per prompt, with the sampled tokens' log-probs under the sampling distribution."""

    @abc.abstractmethod
    def score(self, prompts: list[list[int]], completions: list[list[int]], temperature: float = 1.0) -> list[list[float]]:
        """Log-prob of each given completion token (at `temperature`), without sampling."""

    @abc.abstractmethod
    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Replace the engine's weights in place from (HF parameter name, tensor) pairs, streamed in buckets.

        A sleeping engine wakes itself as it needs to (an engine that can sleep knows the cheapest order)."""

    def sleep(self) -> None:
        """Free KV cache (and weights where supported) while the learner trains; a no-op where unsupported."""

    def wake(self) -> None:
        """Undo `sleep` before the next generate or score (`load_weights` needs no wake first)."""

    def close(self) -> None:
        """Release the engine's resources."""


# -- checks every engine shares ---------------------------------------------------------------------


def token_budgets(prompts: list[list[int]], sampling: SamplingSettings, max_model_len: int) -> list[int]:
    """New-token budget per prompt: `max_tokens`, cut so prompt + completion fits in `max_model_len`.

    Raises ValueError for an empty prompt or one that leaves no room to generate (callers that want
    "too long" to be a game outcome check `len(prompt) < engine.max_model_len` first).
    """
    if sampling.max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {sampling.max_tokens}")
    if sampling.temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {sampling.temperature}")
    if not 0.0 < sampling.top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {sampling.top_p}")
    budgets = []
    for i, prompt in enumerate(prompts):
        if not prompt:
            raise ValueError(f"prompt {i} is empty")
        if len(prompt) >= max_model_len:
            raise ValueError(
                f"prompt {i} has {len(prompt)} tokens, leaving no room to generate within max_model_len={max_model_len}"
            )
        budgets.append(min(sampling.max_tokens, max_model_len - len(prompt)))
    return budgets


def check_score_inputs(prompts: list[list[int]], completions: list[list[int]], temperature: float,
                       max_model_len: int) -> None:
    """Raise ValueError unless `score` can evaluate these pairs."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    if temperature <= 0:
        raise ValueError(f"score needs temperature > 0, got {temperature}")
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        if not prompt:
            raise ValueError(f"prompt {i} is empty")
        if len(prompt) + len(completion) > max_model_len:
            raise ValueError(
                f"prompt {i} + completion have {len(prompt) + len(completion)} tokens, over max_model_len={max_model_len}"
            )
