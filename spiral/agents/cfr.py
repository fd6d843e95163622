"""`cfr`: OpenSpiel's CFR+ average policy, solved once per game and parameters, as a scripted agent.

For standard Kuhn Poker and small `openspiel:<game>` games (the ones exploitability is measured on); a
reference opponent close to equilibrium, e.g. `spiral eval cfr --games openspiel:leduc_poker`.
"""

from __future__ import annotations

import functools

from spiral.agents.base import Agent, UnsupportedGameError
from spiral.games.base import Game
from spiral.games.kuhn_poker import KuhnPoker
from spiral.games.openspiel_game import OpenSpielGame, information_set_histories


@functools.cache
def solve(game_string: str, iterations: int) -> dict[str, dict[int, float]]:
    """CFR+ average policy of an OpenSpiel game (`str(pyspiel_game)`): information-state key → {action: probability}."""
    import pyspiel

    game = pyspiel.load_game(game_string)
    information_set_histories(game)  # refuses trees too large to solve here, with the reason
    solver = pyspiel.CFRPlusSolver(game)
    for _ in range(iterations):
        solver.evaluate_and_update_policy()
    return {key: dict(row) for key, row in solver.tabular_average_policy().policy_table().items()}


class CFRAgent(Agent):
    """Plays OpenSpiel's CFR+ average policy after `iterations` iterations (NashConv ~0.01 on Leduc at 200)."""

    def __init__(self, iterations: float = 200) -> None:
        if iterations != int(iterations) or not 1 <= iterations <= 100_000:
            raise ValueError(f"cfr: iterations must be a whole number in 1..100000, got {iterations}")
        self.iterations = int(iterations)
        self.name = "cfr" if self.iterations == 200 else f"cfr:iterations={self.iterations}"

    def action_probabilities(self, game: Game) -> dict[str, float]:
        if isinstance(game, OpenSpielGame):
            key = game.information_state(game.current_player())
            names = {action: move for move, action in ((m, game.action_id(m)) for m in game.legal_actions())}
            game_string = str(game.openspiel_game)
        elif isinstance(game, KuhnPoker) and game.deck_size == 3 and not game.win_loss:
            key = game.hand_information_state(game.current_player())
            names = {i: game.action_for_letter(key, letter) for i, letter in enumerate("pb")}
            game_string = "kuhn_poker()"
        else:
            raise UnsupportedGameError("the cfr agent plays standard kuhn_poker and small openspiel:<game> games")
        try:
            row = solve(game_string, self.iterations)[key]
        except ValueError as err:
            raise UnsupportedGameError(f"the cfr agent cannot solve {game.name}: {err}") from None
        return {names[action]: p for action, p in row.items() if action in names}
