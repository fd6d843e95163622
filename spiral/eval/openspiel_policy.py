"""Exploitability targets for small `openspiel:<game>` games: one adapter state per information set, and
OpenSpiel's NashConv of a tabular policy over them.

Only games small enough to read a model's policy at every information set qualify (Kuhn, Leduc, Liar's Dice
with few faces); larger ones are refused with the count that was exceeded. Best responses are OpenSpiel's.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from typing import Any

from spiral.eval.exploitability import ExploitabilityResult, PolicyTarget
from spiral.games import make_game
from spiral.games.openspiel_game import OpenSpielGame, information_set_histories

_PROB_TOL = 1e-6


@functools.cache
def _cached_target(name: str, params_json: str) -> PolicyTarget:
    params = json.loads(params_json)
    game = make_game(name, params)
    assert isinstance(game, OpenSpielGame)
    try:
        histories = information_set_histories(game.openspiel_game)
    except ValueError as err:
        raise ValueError(f"{name} has no exact exploitability here: {err} (try smaller parameters)") from None
    states: dict[str, OpenSpielGame] = {}
    for key, history in histories.items():
        state = make_game(name, params)
        assert isinstance(state, OpenSpielGame)
        state.reset_history(history)
        states[key] = state

    def score(table: Mapping[str, Mapping[str, float]], mode: str, **extra: Any) -> ExploitabilityResult:
        return _score(game, states, table, mode, **extra)

    ids = {key: {move: state.action_id(move) for move in state.legal_actions()} for key, state in states.items()}
    return PolicyTarget(states, score, game.openspiel_game, ids)


def openspiel_target(name: str, params: Mapping[str, Any]) -> PolicyTarget:
    """The exploitability target of `openspiel:<game>` with `params` (built once per game and parameters)."""
    return _cached_target(name, json.dumps(dict(params), sort_keys=True))


def _score(game: OpenSpielGame, states: Mapping[str, OpenSpielGame], table: Mapping[str, Mapping[str, float]],
           mode: str, **extra: Any) -> ExploitabilityResult:
    """OpenSpiel's NashConv of {key: {move: probability}}; exploitability is NashConv / 2 (two seats, constant sum).

    OpenSpiel's C++ best response (several times faster than its Python one on Leduc; the same values)."""
    import pyspiel

    if set(table) != set(states):
        missing, unknown = sorted(set(states) - set(table)), sorted(set(table) - set(states))
        raise ValueError(f"{game.name} policy must cover every information set; missing {missing[:5]} "
                         f"({len(missing)}), unknown {unknown[:5]} ({len(unknown)})")
    clean: dict[str, dict[str, float]] = {}
    rows: dict[str, list[tuple[int, float]]] = {}
    for key, probs in table.items():
        legal = states[key].legal_actions()
        if set(probs) - set(legal):
            raise ValueError(f"information set {key!r}: moves {sorted(set(probs) - set(legal))} are not legal; legal: {legal}")
        row = [float(probs.get(move, 0.0)) for move in legal]
        if any(not math.isfinite(p) or p < 0 for p in row) or abs(sum(row) - 1.0) > _PROB_TOL:
            raise ValueError(f"information set {key!r}: probabilities {dict(probs)} are not a distribution")
        clean[key] = {move: p / sum(row) for move, p in zip(legal, row)}
        rows[key] = [(states[key].action_id(move), p) for move, p in clean[key].items()]
    nash_conv = float(pyspiel.nash_conv(game.openspiel_game, pyspiel.TabularPolicy(rows)))
    return ExploitabilityResult(exploitability=nash_conv / 2, nash_conv=nash_conv, policy=clean, mode=mode, **extra)
