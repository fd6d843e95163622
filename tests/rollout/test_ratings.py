"""Pool ratings: results read from game records, ratings moving the right way, joining, eviction, state."""

from __future__ import annotations

import json

from spiral.rollout.opponents import OpponentPool
from spiral.rollout.ratings import PoolRatings, policy_result
from spiral.types import GameRecord, TurnRecord


def _record(policy_seat: int, returns: list[float], end_reason: str = "terminal") -> GameRecord:
    first = TurnRecord(0, "policy" if policy_seat == 0 else "opponent", "obs", "x", "check")
    return GameRecord("kuhn_poker", 0, [first], returns, end_reason)


def test_policy_result_reads_the_policys_seat() -> None:
    assert policy_result(_record(0, [2.0, -2.0])) == 1.0
    assert policy_result(_record(1, [2.0, -2.0])) == 0.0
    assert policy_result(_record(1, [-1.0, 1.0])) == 1.0
    assert policy_result(_record(0, [0.0, 0.0])) == 0.5
    assert policy_result(_record(0, [0.0, 0.0], "game_error")) is None
    assert policy_result(GameRecord("kuhn_poker", 0, [], [1.0, -1.0])) is None  # nobody moved


def _league(*steps: int, capacity: int = 4) -> tuple[OpponentPool, PoolRatings]:
    pool = OpponentPool(capacity)
    ratings = PoolRatings(pool)
    for step in steps:
        pool.add(f"ckpt/step-{step}/model")
        ratings.join(f"ckpt/step-{step}/model", step)
    return pool, ratings


def test_the_winner_goes_up_and_the_loser_down() -> None:
    _, ratings = _league(1)
    start = ratings.metrics()
    assert start == {"pool/rating/policy": 25.0, "pool/rating/step-1": 25.0, "pool/rating/policy_minus_best": 0.0}
    ratings.rate("ckpt/step-1/model", [1.0, 1.0, None])
    won = ratings.metrics()
    assert won["pool/rating/policy"] > 25.0 > won["pool/rating/step-1"]
    assert won["pool/rating/policy_minus_best"] > 0
    ratings.rate("ckpt/step-1/model", [0.0] * 6)
    lost = ratings.metrics()
    assert lost["pool/rating/policy"] < won["pool/rating/policy"]
    assert lost["pool/rating/step-1"] > won["pool/rating/step-1"]
    assert lost["pool/rating/policy_minus_best"] < 0


def test_draws_pull_the_ratings_together_and_skipped_games_change_nothing() -> None:
    _, ratings = _league(1)
    ratings.rate("ckpt/step-1/model", [1.0] * 4)
    before = ratings.metrics()
    ratings.rate("ckpt/step-1/model", [None, None])
    assert ratings.metrics() == before
    ratings.rate("ckpt/step-1/model", [0.5] * 4)
    assert 0 < ratings.metrics()["pool/rating/policy_minus_best"] < before["pool/rating/policy_minus_best"]


def test_a_new_member_starts_from_the_policy_and_evicted_members_go() -> None:
    pool, ratings = _league(1, 2, capacity=2)
    ratings.rate("ckpt/step-2/model", [1.0] * 3)
    policy = ratings.metrics()["pool/rating/policy"]
    pool.add("ckpt/step-3/model")
    ratings.join("ckpt/step-3/model", 3)
    metrics = ratings.metrics()
    assert metrics["pool/rating/step-3"] == policy
    assert "pool/rating/step-1" not in metrics and metrics["pool/rating/step-2"] < 25.0
    assert [m[0] for m in ratings.state_dict()["members"]] == ["ckpt/step-2/model", "ckpt/step-3/model"]


def test_restored_ratings_update_exactly_as_the_originals() -> None:
    pool, ratings = _league(1, 2)
    ratings.rate("ckpt/step-1/model", [1.0, 0.0, 1.0])
    restored = PoolRatings(pool)
    restored.load_state_dict(json.loads(json.dumps(ratings.state_dict())))
    assert restored.metrics() == ratings.metrics()
    for league in (ratings, restored):
        league.rate("ckpt/step-2/model", [0.5, 0.0, 1.0, 1.0])
    assert restored.metrics() == ratings.metrics()
