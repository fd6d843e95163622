"""A KV cache for the HF engine's decoding loop that is written in place instead of grown by concatenation.

transformers' `DynamicLayer` appends each step's keys and values with `torch.cat`, which copies the whole cache
every decode step; at 64 rows that copy was about a third of a CPU decode step for the tiny model. Here each
full-attention layer allocates its buffers once, for the longest sequence the batch can reach, and hands the
model views of the filled part, so attention still sees exactly the cached tokens and nothing else.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, PretrainedConfig
from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """One layer's keys and values in buffers of `capacity` positions, filled front to back."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self._filled = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        rows, heads = key_states.shape[:2]
        self._key_buffer = key_states.new_empty((rows, heads, self.capacity, key_states.shape[-1]))
        self._value_buffer = value_states.new_empty((rows, heads, self.capacity, value_states.shape[-1]))
        self._filled = 0
        self._expose()
        self.is_initialized = True

    def _expose(self) -> None:
        self.keys = self._key_buffer[:, :, : self._filled]
        self.values = self._value_buffer[:, :, : self._filled]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self._filled + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache holds {self.capacity} positions; this step needs {end}")
        self._key_buffer[:, :, self._filled:end] = key_states
        self._value_buffer[:, :, self._filled:end] = value_states
        self._filled = end
        self._expose()
        return self.keys, self.values

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self._key_buffer = self._key_buffer.repeat_interleave(repeats, dim=0)
            self._value_buffer = self._value_buffer.repeat_interleave(repeats, dim=0)
            self._expose()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self._key_buffer = self._key_buffer[indices]
            self._value_buffer = self._value_buffer[indices]
            self._expose()

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("the HF engine never crops its decoding cache")

    def reset(self) -> None:
        self._filled = 0
        super().reset()


def preallocated_cache(config: PretrainedConfig, capacity: int) -> DynamicCache:
    """The model's usual dynamic cache with every plain full-attention layer swapped for a `PreallocatedLayer`.

    Other layer kinds (sliding windows, linear attention) keep transformers' own implementation.
    """
    cache = DynamicCache(config=config)
    cache.layers = [PreallocatedLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
