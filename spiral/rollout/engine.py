"""The inference-engine interface the actor, evaluators and weight sync program against.

Implementations: `hf_engine.HFEngine` (transformers generate) and `vllm_engine.VLLMEngine` (in-process vLLM).
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
