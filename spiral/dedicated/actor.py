"""An actor rank of the dedicated layout: owns one inference engine, plays, and never trains.

Batch k (the samples for training step k) is played with weights at least version k - 1 - max_staleness;
the actor takes each new version from the bridge only when a batch needs it, so with max_staleness 1 it
plays batch k + 1 while the learner trains on batch k. Actor 0 also runs the online evaluation, with the
weights of the version being evaluated, and sends its metrics to the learner.
"""

from __future__ import annotations

import math
import time
from typing import Any

from spiral.config import SpiralConfig
from spiral.dedicated.bridge import Bridge
from spiral.rollout.collector import Collector
from spiral.rollout.engine_factory import create_engine_from_config
from spiral.rollout.opponents import Opponents
from spiral.seeding import derive_seed


def eval_due(cfg: SpiralConfig, version: int, start_step: int) -> bool:
    """Whether the online evaluation runs on weights `version` (as the colocated loop evaluates at steps)."""
    every = cfg.eval.every
    if every <= 0:
        return False
    if version == 0:
        return start_step == 0
    return version > start_step and (version % every == 0 or version == cfg.trainer.steps)


class Actor:
    """One actor rank's engine, opponents and current weight version."""

    def __init__(self, cfg: SpiralConfig, model_path: str, bridge: Bridge, index: int) -> None:
        from spiral.train import _eval_opponent_engines

        self.cfg, self.bridge, self.index = cfg, bridge, index
        self.engine = create_engine_from_config(cfg, model_path)
        self.opponents = Opponents(cfg, model_path)
        self.eval_engines = _eval_opponent_engines(cfg) if index == 0 else {}
        self.version = -1
        self.start_step = 0

    def _take_weights(self) -> dict[str, Any]:
        """Receive the next version (in place, bucket by bucket) and, on actor 0, evaluate it when due."""
        header, weights = self.bridge.recv_weights()
        self.engine.load_weights(weights)
        for _ in weights:  # an engine that stops early must not leave buckets unread on the bridge
            pass
        self.version, self.start_step = int(header["version"]), int(header["start_step"])
        self.opponents.pool.load_state_dict(header["pool"])
        if self.index == 0 and eval_due(self.cfg, self.version, self.start_step):
            from spiral.train import evaluate

            metrics = evaluate(self.cfg, self.engine, self.version, opponent_engines=self.eval_engines)
            self.bridge.send(("eval", self.version, metrics), 0)
        return header

    def run(self) -> None:
        """Play every batch from the learner's first broadcast's `next_batch` to the last step, then take the
        remaining versions (the last one may be evaluated)."""
        cfg = self.cfg
        header = self._take_weights()
        per_actor = math.ceil(cfg.rollout.samples_per_step / self.bridge.roles.actors)
        for step in range(int(header["next_batch"]), cfg.trainer.steps + 1):
            waited = time.perf_counter()
            while self.version < step - 1 - cfg.rollout.max_staleness:
                self._take_weights()
            waited = time.perf_counter() - waited
            collector = Collector(self.engine, cfg.games, cfg.rollout, opponent=self.opponents.for_step(step),
                                  seed=derive_seed(cfg.run.seed, "rollout", self.index, step))
            played = time.perf_counter()
            rollout = collector.collect(per_actor)
            for sample in rollout.samples:
                sample.version = self.version
            batch: dict[str, Any] = {"step": step, "version": self.version, "samples": rollout.samples,
                                     "records": rollout.records, "stats": rollout.stats, "idle_s": waited,
                                     "rollout_s": time.perf_counter() - played}
            self.bridge.send(("batch", batch), 0)
        while self.version < cfg.trainer.steps:
            self._take_weights()
        self.bridge.close()
        self.engine.close()
