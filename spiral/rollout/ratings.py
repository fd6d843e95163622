"""Ratings of the learning policy and the opponent pool's members from the training games they played
(`rollout.pool_ratings`): a league view of a pool run.

The rating maths is openskill's. Its `ThurstoneMostellerFull` model is the one closest to TrueSkill: Gaussian
performances compared through the normal CDF, with an explicit draw margin (`epsilon`), so draws (TicTacToe)
are an outcome of the model rather than half a win and half a loss; with two one-player teams the "full"
pairing is exact. Its `tau` widens every rating a little before each game, which lets the policy's rating,
the rating of a player that keeps changing, follow it instead of freezing once its sigma is small.

Every game of a step is rated in turn (rank order, then the collector's order), between the policy and the
pool member that step played. A checkpoint joining the pool starts from the policy's rating at that moment.
The logged number is `mu`, the skill estimate: the conservative ordinal (mu - 3 sigma) would mostly measure
how many games a member has played, and new members start with the policy's sigma, not the prior's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openskill.models import ThurstoneMostellerFull, ThurstoneMostellerFullRating

from spiral.rollout.collector import policy_seat

if TYPE_CHECKING:
    from spiral.rollout.opponents import OpponentPool
    from spiral.types import GameRecord

log = logging.getLogger(__name__)


def policy_result(record: GameRecord) -> float | None:
    """The policy's result in a game against an opponent: 1 won, 0.5 drawn, 0 lost; None when the game says
    nothing about skill (a game error, or a game nobody moved in)."""
    seat = policy_seat(record)
    if seat is None or record.end_reason == "game_error":
        return None
    mine, theirs = record.returns[seat], record.returns[1 - seat]
    return 1.0 if mine > theirs else 0.0 if mine < theirs else 0.5


class PoolRatings:
    """The policy's rating and each pool member's (by checkpoint step), updated game by game."""

    def __init__(self, pool: OpponentPool) -> None:
        self.pool = pool
        self.model = ThurstoneMostellerFull()
        self.policy = self.model.rating()
        self.members: dict[str, tuple[int, ThurstoneMostellerFullRating]] = {}  # model path -> (step, rating)

    def join(self, path: str, step: int) -> None:
        """Rate the checkpoint of `step` (at `path`, just added to the pool) from the policy's current rating."""
        self.members[path] = (step, self.model.rating(self.policy.mu, self.policy.sigma))
        self.members = {p: member for p, member in self.members.items() if p in self.pool.paths}  # the evicted go

    def rate(self, path: str, results: Iterable[float | None]) -> None:
        """Update the policy and the member at `path` from the policy's results against it (see `policy_result`;
        None is skipped)."""
        step, member = self.members[path]
        for result in results:
            if result is None:
                continue
            # ranks: lower is better, equal is a draw
            (policy,), (member,) = self.model.rate([[self.policy], [member]], ranks=[1.0 - result, result])
            self.policy = policy
        self.members[path] = (step, member)

    def metrics(self) -> dict[str, float]:
        """`pool/rating/policy`, `pool/rating/step-<N>` per current member, and `pool/rating/policy_minus_best`
        (the policy's mu minus the best member's) once the pool has members."""
        out = {"pool/rating/policy": self.policy.mu}
        current = [self.members[p] for p in self.pool.paths]
        for step, rating in current:
            out[f"pool/rating/step-{step}"] = rating.mu
        if current:
            out["pool/rating/policy_minus_best"] = self.policy.mu - max(rating.mu for _, rating in current)
        return out

    def state_dict(self) -> dict[str, Any]:
        """JSON-able ratings (mu, sigma) of the policy and of the pool's members."""
        return {"policy": [self.policy.mu, self.policy.sigma],
                "members": [[path, step, rating.mu, rating.sigma] for path, (step, rating) in self.members.items()]}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore `state_dict`'s ratings. None (a checkpoint saved without `rollout.pool_ratings`) starts the
        policy and the pool's members from the prior, with a warning."""
        from spiral.learner.checkpoint import checkpoint_step

        if state is None:
            log.warning("the checkpoint holds no pool ratings (saved without rollout.pool_ratings): every rating "
                        "starts from the prior")
            self.policy = self.model.rating()
            self.members = {path: (checkpoint_step(Path(path).parent), self.model.rating()) for path in self.pool.paths}
            return
        mu, sigma = state["policy"]
        self.policy = self.model.rating(mu, sigma)
        self.members = {path: (int(step), self.model.rating(m, s)) for path, step, m, s in state["members"]}
