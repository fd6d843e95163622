"""Scripted agents: uniform random, a Kuhn Poker equilibrium (OpenSpiel's α-family) and perfect Tic-Tac-Toe.

Their `action_probabilities` are exact, so evaluators can compute exploitability and expected returns.
"""

from __future__ import annotations

import random
from functools import cache

from spiral.agents.base import Agent, UnsupportedGameError
from spiral.games.base import Game
from spiral.games.kuhn_poker import KuhnPoker
from spiral.games.tic_tac_toe import EMPTY, TicTacToe


class RandomAgent(Agent):
    """Uniform over the legal moves; with `bias` > 0, a fixed random preference per information state.

    `bias` b mixes uniform play with a random distribution drawn once per (information state, `seed`):
    p = (1 − b)·uniform + b·Dirichlet(1). The moves then depend on what the seat sees (its card, the board)
    without any strategy behind it, e.g. to warm a model up on the answer format without teaching it to
    ignore its observation (see docs/results.md).
    """

    def __init__(self, bias: float = 0.0, seed: float = 0) -> None:
        if not 0.0 <= bias <= 1.0:
            raise ValueError(f"random: bias must be in [0, 1], got {bias}")
        self.bias = bias
        self.seed = int(seed)
        self.name = "random" if bias == 0 else f"random:bias={bias:g};seed={self.seed}"

    def action_probabilities(self, game: Game) -> dict[str, float]:
        if game.free_form:
            raise UnsupportedGameError(f"{game.name} is free-form (its moves cannot be listed); the random agent "
                                       "picks from a list of legal moves")
        legal = game.legal_actions()
        if self.bias == 0:
            return {a: 1.0 / len(legal) for a in legal}
        rng = random.Random(f"{self.seed}/{game.name}/{game.information_state(game.current_player())}")
        draws = [rng.expovariate(1.0) for _ in legal]  # normalised exponentials are a Dirichlet(1) sample
        return {a: (1 - self.bias) / len(legal) + self.bias * d / sum(draws) for a, d in zip(legal, draws)}


class KuhnNashAgent(Agent):
    """An equilibrium of standard (3-card, chip-payoff) Kuhn Poker, parameterised by α in [0, 1/3].

    First to act: bet J with α, never bet Q, bet K with 3α; after check-bet call Q with α + 1/3,
    always call K, fold J. Second: after a bet call K, call Q with 1/3, fold J; after a check bet K,
    bet J with 1/3, check Q. Per hand this is an equilibrium in multi-hand games too, because hands
    are independent and chips add up.
    """

    def __init__(self, alpha: float = 0.0) -> None:
        if not 0.0 <= alpha <= 1.0 / 3.0:
            raise ValueError(f"nash: alpha must be in [0, 1/3], got {alpha}")
        self.alpha = alpha
        self.name = "nash" if alpha == 0.0 else f"nash:alpha={alpha:g}"
        a = alpha
        # Probability of the aggressive OpenSpiel action "b" (bet or call) at each decision key.
        self._bet = {
            "0": a, "1": 0.0, "2": 3 * a,  # first to act: J, Q, K
            "0pb": 0.0, "1pb": a + 1 / 3, "2pb": 1.0,  # first, after check then bet
            "0b": 0.0, "1b": 1 / 3, "2b": 1.0,  # second, facing a bet
            "0p": 1 / 3, "1p": 0.0, "2p": 1.0,  # second, after a check
        }  # fmt: skip

    def action_probabilities(self, game: Game) -> dict[str, float]:
        if not isinstance(game, KuhnPoker) or game.deck_size != 3 or game.win_loss:
            raise UnsupportedGameError(
                "the nash agent only knows standard Kuhn Poker (kuhn_poker with deck_size=3, win_loss=false)"
            )
        key = game.hand_information_state(game.current_player())
        p = self._bet[key]
        return {game.action_for_letter(key, "b"): p, game.action_for_letter(key, "p"): 1.0 - p}


@cache
def _value(board: tuple[int, ...], player: int) -> int:
    """Minimax value of a 3×3 position for `player` to move: +1 win, 0 draw, -1 loss."""
    empty = [i for i, v in enumerate(board) if v == EMPTY]
    if not empty:
        return 0
    best = -1
    for cell in empty:
        after = board[:cell] + (player,) + board[cell + 1 :]
        if _wins(after, player):
            return 1
        best = max(best, -_value(after, 1 - player))
    return best


_LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))


def _wins(board: tuple[int, ...], player: int) -> bool:
    return any(all(board[i] == player for i in line) for line in _LINES)


class MinimaxAgent(Agent):
    """Perfect play for 3×3 Tic-Tac-Toe: uniform over the moves with the best minimax value.

    With `epsilon` > 0 it plays a uniformly random legal move with that probability instead: a noisy
    expert, a training opponent that punishes every missed block yet still leaves games to win.
    """

    def __init__(self, epsilon: float = 0.0) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"minimax: epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = epsilon
        self.name = "minimax" if epsilon == 0.0 else f"minimax:epsilon={epsilon:g}"

    def action_probabilities(self, game: Game) -> dict[str, float]:
        if not isinstance(game, TicTacToe) or game.size != 3 or game.win_length != 3:
            raise UnsupportedGameError("the minimax agent only plays tic_tac_toe with size=3, win_length=3")
        board, me = game.board(), game.current_player()
        scores = {}
        for move in game.legal_actions():
            cell = int(move)
            after = board[:cell] + (me,) + board[cell + 1 :]
            scores[move] = 1 if _wins(after, me) else -_value(after, 1 - me)
        best = max(scores.values())
        top = [m for m, s in scores.items() if s == best]
        uniform = self.epsilon / len(scores)
        return {m: uniform + ((1.0 - self.epsilon) / len(top) if m in top else 0.0) for m in scores}
