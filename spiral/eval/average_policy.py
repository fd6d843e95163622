"""The average policy of the opponent pool and the current policy, as fictitious play defines it, and its
exploitability (`eval.average_policy`).

At an information set I of player p the average plays Σ_k π_k(a|I)·reach_k(I) / Σ_k reach_k(I), where reach_k(I)
is the product of p's own action probabilities on the path to I under policy k, with the same weight for every
policy. OpenSpiel's `PolicyAggregator` computes that mixture; this module only converts spiral's tables to
OpenSpiel policies and back, and keeps the read-out tables of the pool's members (`PoolAverage`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from spiral.eval.exploitability import PolicyTarget, model_exploitability

if TYPE_CHECKING:
    from spiral.eval.game_eval import GameReport
    from spiral.rollout.engine import Engine
    from spiral.rollout.opponents import OpponentPool
    from spiral.types import SamplingSettings

log = logging.getLogger(__name__)

Table = Mapping[str, Mapping[str, float]]
"""A tabular policy: information-state key → {legal spiral move: probability}."""
Tables = dict[str, dict[str, dict[str, float]]]
"""One tabular policy per game name."""


def average_table(target: PolicyTarget, tables: Sequence[Table]) -> dict[str, dict[str, float]]:
    """The reach-weighted average of `tables` (each covering every information set of `target`), equal weights."""
    from open_spiel.python import policy as os_policy
    from open_spiel.python.algorithms.policy_aggregator import PolicyAggregator

    if not tables:
        raise ValueError("the average of no policies is undefined: pass at least one table")
    base = os_policy.TabularPolicy(target.openspiel_game)
    policies = []
    for table in tables:
        if set(table) != set(target.action_ids):
            raise ValueError(f"a policy to average covers {len(table)} information sets; the game has "
                             f"{len(target.action_ids)}")
        tabular = base.__copy__()
        for key, ids in target.action_ids.items():
            if set(table[key]) - set(ids):
                raise ValueError(f"information set {key!r}: moves {sorted(set(table[key]) - set(ids))} are not legal")
            row = tabular.policy_for_key(key)
            row[:] = 0.0
            for move, prob in table[key].items():
                row[ids[move]] = prob
        policies.append(tabular)
    weights = [1.0 / len(policies)] * len(policies)
    # One list of policies and weights per player: every policy plays both seats.
    mixed = PolicyAggregator(target.openspiel_game).aggregate([0, 1], [policies, policies], [weights, list(weights)])
    return {
        key: {move: float(mixed.policy[target.states[key].current_player()][key][action]) for move, action in ids.items()}
        for key, ids in target.action_ids.items()
    }


class PoolAverage:
    """The read-out tables of the pool's members (by model path) and `eval/<game>/average_exploitability`: the
    exploitability of the average of the members still in `pool` and the current policy."""

    def __init__(self, pool: OpponentPool, targets: Mapping[str, PolicyTarget]) -> None:
        self.pool = pool
        self.targets = dict(targets)
        self.members: dict[str, Tables] = {}
        self._latest: tuple[int, Tables] | None = None  # the last evaluated step and its read-out

    def observe(self, step: int, report: GameReport) -> dict[str, float]:
        """The average exploitability of each game `report` measured exploitability on, with its read-out as the
        current policy (kept for `policy_at`)."""
        current = {game: dict(result.exploitability.policy) for game, result in report.games.items()
                   if result.exploitability is not None and game in self.targets}
        self._latest = (step, current)
        metrics: dict[str, float] = {}
        for game, table in current.items():
            tables = [self.members[p][game] for p in self.pool.paths if game in self.members.get(p, {})] + [table]
            target = self.targets[game]
            metrics[f"eval/{game}/average_exploitability"] = target.score(average_table(target, tables),
                                                                          "table").exploitability
        return metrics

    def policy_at(self, step: int, engine: Engine, template: str, sampling: SamplingSettings, samples: int) -> Tables:
        """The read-out of the policy at `step`: the evaluation's, if it evaluated this step, else read from `engine`
        the way the evaluation reads it."""
        if self._latest is not None and self._latest[0] == step:
            return self._latest[1]
        engine.wake()
        return {game: dict(model_exploitability(engine, template, sampling, samples=samples, target=target).policy)
                for game, target in self.targets.items()}

    def add(self, path: str, tables: Tables) -> None:
        """A checkpoint joined the pool with these read-out tables; members that left the pool are forgotten."""
        self.members[path] = tables
        self.members = {p: t for p, t in self.members.items() if p in self.pool.paths}

    def load(self) -> None:
        """Read the members' tables from their checkpoints' `state.json` (`policy`), as a resumed run must.

        A member saved without `eval.average_policy` has none and is left out of the average (with a warning)."""
        from spiral.learner.checkpoint import saved_state

        for path in self.pool.paths:
            tables = saved_state(Path(path).parent).get("policy")
            if tables is None:
                log.warning("pool member %s was saved without eval.average_policy: the average leaves it out", path)
            else:
                self.members[path] = tables
