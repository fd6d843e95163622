"""Opponents for the learning policy: `Opponents` (what `rollout.opponent` names, step by step) and the pool of
past checkpoints it samples from, by recency or uniformly (`rollout.pool_sampling`).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from spiral.choices import POOL_SAMPLING, one_of

if TYPE_CHECKING:
    from spiral.config import SpiralConfig
    from spiral.rollout.collector import MoveChooser
    from spiral.rollout.engine import Engine


class OpponentPool:
    """The `capacity` most recent checkpoint paths; `sample` picks the i-th oldest with weight i + 1 (`recency`)
    or each with the same weight (`uniform`)."""

    def __init__(self, capacity: int, sampling: str = "recency") -> None:
        if capacity < 1:
            raise ValueError(f"opponent pool capacity must be at least 1, got {capacity}")
        if sampling not in POOL_SAMPLING:
            raise ValueError(f"opponent pool sampling must be {one_of(POOL_SAMPLING)}, not {sampling!r}")
        self.capacity = capacity
        self.sampling = sampling
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
        """One checkpoint path: linearly more likely the more recent it is (`recency`), or uniformly drawn."""
        if not self.paths:
            raise LookupError("the opponent pool is empty: add a checkpoint before sampling (or play self-play first)")
        if self.sampling == "uniform":
            return rng.choice(self.paths)
        return rng.choices(self.paths, weights=range(1, len(self.paths) + 1))[0]

    def state_dict(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "paths": list(self.paths)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the pool; a smaller current capacity keeps only the most recent paths."""
        self.paths = []
        for path in state["paths"]:
            self.add(path)


class Opponents:
    """Who the policy plays in training rollouts: itself (`self`), a scripted agent, a fixed checkpoint, or a
    past checkpoint of this run drawn from `pool` as `rollout.pool_sampling` says (self-play until the first
    checkpoint exists).

    Owns the opponent engine a checkpoint or the pool needs (built beside the policy's engine).
    """

    def __init__(self, cfg: SpiralConfig, policy_path: str) -> None:
        from spiral.agents import make_agent
        from spiral.agents.factory import is_model_spec
        from spiral.models import resolve_model_path
        from spiral.rollout.engine_factory import create_engine_from_config

        self.cfg = cfg
        self.pool = OpponentPool(cfg.rollout.pool_size, cfg.rollout.pool_sampling)
        spec = cfg.rollout.opponent
        self.engine: Engine | None = None
        self.fixed: Engine | MoveChooser | None = None
        if spec == "pool":
            self.engine = create_engine_from_config(cfg, policy_path, secondary=True)
        elif spec != "self" and is_model_spec(spec):
            self.engine = self.fixed = create_engine_from_config(cfg, resolve_model_path(spec), secondary=True)
        elif spec != "self":
            self.fixed = make_agent(spec, seed=cfg.run.seed)

    def member_for_step(self, step: int) -> str | None:
        """The pool member (checkpoint model path) training step `step` plays; None without one (no pool, or
        an empty pool: self-play). The same path on every call and every rank."""
        if self.cfg.rollout.opponent != "pool" or len(self.pool) == 0:
            return None
        from spiral.seeding import derive_seed

        return self.pool.sample(random.Random(derive_seed(self.cfg.run.seed, "pool", step)))

    def for_step(self, step: int) -> Engine | MoveChooser | None:
        """The opponent of training step `step` (None: self-play); with the pool, loads the checkpoint sampled
        for this step (`member_for_step`) into the opponent engine."""
        path = self.member_for_step(step)
        if path is None or self.engine is None:
            return self.fixed
        from spiral.learner.checkpoint import iter_model_weights

        self.engine.load_weights(iter_model_weights(path))
        return self.engine
