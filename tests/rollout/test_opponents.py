"""The checkpoint pool: capacity, recency-weighted and uniform sampling, state round trip."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from spiral.rollout.opponents import OpponentPool


def test_keeps_the_most_recent_checkpoints():
    pool = OpponentPool(3)
    for step in range(5):
        pool.add(f"ckpt/{step}")
    assert pool.paths == ["ckpt/2", "ckpt/3", "ckpt/4"] and len(pool) == 3
    pool.add("ckpt/2")  # re-adding makes it the newest
    assert pool.paths == ["ckpt/3", "ckpt/4", "ckpt/2"]


def test_sampling_favours_recent_checkpoints_linearly():
    pool = OpponentPool(3)
    for name in ("old", "mid", "new"):
        pool.add(name)
    rng = random.Random(0)
    counts = Counter(pool.sample(rng) for _ in range(6000))
    for name, weight in (("old", 1), ("mid", 2), ("new", 3)):
        assert counts[name] / 6000 == pytest.approx(weight / 6, abs=0.02)


def test_uniform_sampling_draws_every_member_equally():
    # Recency would draw old/mid/new 1/6, 2/6, 3/6 of the time: outside these bounds for old and new.
    pool = OpponentPool(3, sampling="uniform")
    for name in ("old", "mid", "new"):
        pool.add(name)
    rng = random.Random(0)
    counts = Counter(pool.sample(rng) for _ in range(6000))
    for name in ("old", "mid", "new"):
        assert counts[name] / 6000 == pytest.approx(1 / 3, abs=0.02)


def test_unknown_sampling_is_refused():
    with pytest.raises(ValueError, match="recency or uniform, not 'fifo'"):
        OpponentPool(3, sampling="fifo")


def test_state_round_trip_and_empty_pool():
    pool = OpponentPool(4)
    with pytest.raises(LookupError, match="empty"):
        pool.sample(random.Random(0))
    for step in range(3):
        pool.add(f"ckpt/{step}")
    restored = OpponentPool(2)
    restored.load_state_dict(pool.state_dict())
    assert restored.paths == ["ckpt/1", "ckpt/2"]
    with pytest.raises(ValueError, match="capacity"):
        OpponentPool(0)
