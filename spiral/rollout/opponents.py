"""Opponents for the learning policy: the pool of past checkpoints, sampled with a bias toward recent ones.

Only bookkeeping of paths; loading a sampled checkpoint into an engine is the trainer's job.
"""

from __future__ import annotations

import random
from typing import Any


class OpponentPool:
    """The `capacity` most recent checkpoint paths; `sample` picks the i-th oldest with weight i + 1."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"opponent pool capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.paths: list[str] = []  # oldest first

    def __len__(self) -> int:
        return len(self.paths)

    def add(self, path: str) -> None:
        """Add a checkpoint (re-adding one makes it the most recent); the oldest drop out beyond capacity."""
        if path in self.paths:
            self.paths.remove(path)
        self.paths.append(path)
        del self.paths[: max(0, len(self.paths) - self.capacity)]

    def sample(self, rng: random.Random) -> str:
        """One checkpoint path; linearly more likely the more recent it is."""
        if not self.paths:
            raise LookupError("the opponent pool is empty: add a checkpoint before sampling (or play self-play first)")
        return rng.choices(self.paths, weights=range(1, len(self.paths) + 1))[0]

    def state_dict(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "paths": list(self.paths)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the pool; a smaller current capacity keeps only the most recent paths."""
        self.paths = []
        for path in state["paths"]:
            self.add(path)
