"""The actor and the learner agree on the sampling distribution, in free-form and choice mode.

PPO's ratio is only right if the learner's old log-probs are the log-probs the actor sampled with.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spiral.config import load_config
from spiral.learner.learner import Learner
from spiral.models import resolve_model_path
from spiral.rollout.collector import Collector
from spiral.rollout.engine_factory import create_engine_from_config

REPO = Path(__file__).parents[2]


@pytest.mark.parametrize("constraint, temperature", [("none", 1.0), ("none", 0.7), ("choice", 1.0), ("choice", 0.7)])
def test_learner_scores_equal_the_actor_sampling_logprobs(constraint: str, temperature: float) -> None:
    cfg = load_config(REPO / "configs" / "kuhn_tiny.yaml", [
        f"rollout.action_constraint={constraint}", f"rollout.temperature={temperature}",
        "rollout.concurrent_games=8", "rollout.max_tokens=8", "trainer.micro_batch_size=8",
    ])
    path = resolve_model_path(cfg.model.path, seed=cfg.run.seed)
    engine = create_engine_from_config(cfg, path)
    samples = Collector(engine, cfg.games, cfg.rollout, seed=3).collect(12).samples
    assert len(samples) >= 12
    if constraint == "choice":
        assert all(s.choices and len(s.logprobs) == 1 for s in samples)
    learner = Learner(cfg, path)
    learner_logprobs = learner.score(samples, temperature=temperature)
    for sample, scored in zip(samples, learner_logprobs, strict=True):
        # fp32 on CPU: the learner's chunked kernel and the engine's forward differ only by rounding.
        assert scored == pytest.approx(sample.logprobs, abs=2e-4)
    # The logged engine/learner gap says the same: nothing beyond rounding.
    stats = learner.update(samples, temperature=temperature)
    assert 0.0 <= stats["mismatch_max_abs"] <= 2e-4
    assert abs(stats["mismatch_kl"]) <= 1e-7
