"""The fictitious-play average of tabular policies (OpenSpiel's `PolicyAggregator` through spiral's tables)."""

from __future__ import annotations

import pytest

from spiral.agents import make_agent
from spiral.eval.average_policy import average_table
from spiral.eval.exploitability import exploitability_target, kuhn_target, policy_exploitability
from spiral.games.kuhn_poker import KuhnPoker


def _table(**pass_probs: float) -> dict[str, dict[str, float]]:
    """A Kuhn policy: at each information set, pass (check or fold) with the given probability, else 0.5."""
    table = {}
    for player in (0, 1):
        for key in KuhnPoker.information_states(player):
            p = pass_probs.get(f"i{key}", 0.5)
            table[key] = {KuhnPoker.action_for_letter(key, "p"): p, KuhnPoker.action_for_letter(key, "b"): 1 - p}
    return table


def test_mixture_weights_each_policy_by_its_own_reach():
    # Player 0 holding the jack: A always checks first (reach of "0pb" is 1) and folds to a bet 0.8 of the time;
    # B checks half the time (reach 0.5) and folds 0.2 of the time. Reach-weighted fold: (1·0.8 + 0.5·0.2) / 1.5.
    a, b = _table(i0=1.0, i0pb=0.8), _table(i0=0.5, i0pb=0.2)
    avg = average_table(kuhn_target(), [a, b])
    fold, check = KuhnPoker.action_for_letter("0pb", "p"), KuhnPoker.action_for_letter("0", "p")
    assert avg["0pb"][fold] == pytest.approx(0.9 / 1.5, abs=1e-12)  # the plain mean would be 0.5
    assert avg["0"][check] == pytest.approx(0.75, abs=1e-12)  # the root is reached by both: the plain mean
    assert sum(avg["0pb"].values()) == pytest.approx(1.0, abs=1e-12)


def test_average_of_a_policy_with_itself_is_that_policy():
    table = _table(i0=0.3, i1=0.9, i2=0.1, i0p=0.6, i1b=0.7, i2pb=0.05, i1pb=0.4)
    avg = average_table(kuhn_target(), [table, table, table])
    for key, probs in table.items():
        assert avg[key] == pytest.approx(probs, abs=1e-12), key


@pytest.mark.parametrize("target", [kuhn_target(), exploitability_target("openspiel:kuhn_poker")], ids=["native", "openspiel"])
def test_average_of_cfr_with_itself_stays_near_equilibrium(target):
    cfr = policy_exploitability(make_agent("cfr:iterations=2000").action_probabilities, target)
    avg = target.score(average_table(target, [cfr.policy, cfr.policy]), "table")
    assert avg.exploitability < 1e-3 and avg.exploitability == pytest.approx(cfr.exploitability, abs=1e-9)


def test_tables_that_do_not_fit_the_game_are_refused():
    with pytest.raises(ValueError, match="no policies"):
        average_table(kuhn_target(), [])
    with pytest.raises(ValueError, match="12"):
        average_table(kuhn_target(), [{"0": {"check": 1.0}}])
