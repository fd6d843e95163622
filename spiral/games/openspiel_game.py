"""`openspiel:<game>`: any two-player, zero-sum (or constant-sum), sequential OpenSpiel game as a spiral `Game`.

Chance is drawn from the reset seed; moves are named by the game's prose renderer (`openspiel_prose`), by
default OpenSpiel's own `action_to_string`. Game-theoretic evaluation lives in `spiral.eval`, not here.
"""

from __future__ import annotations

import difflib
import functools
import random
from collections.abc import Sequence
from typing import Any

from spiral.games.base import Game, IllegalMoveError
from spiral.games.openspiel_prose import renderer_for
from spiral.games.parsing import normalize_move
from spiral.games.registry import GameNotFound

SCHEME = "openspiel"
MAX_INFORMATION_SETS = 2_000
"""Games with more information sets than this get no exploitability or CFR policy (a model read-out asks one
prompt per information set)."""
MAX_STATES = 100_000
"""The game tree is walked to find the information sets; a larger tree is refused before it is built."""


def refusal(game: Any) -> str | None:
    """Why a loaded `pyspiel.Game` cannot be a spiral game (None when it can)."""
    import pyspiel

    kind = game.get_type()
    if kind.dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
        return f"it is a {kind.dynamics.name.lower()}-move game; spiral games take turns (sequential moves only)"
    if game.num_players() != 2:
        return f"it has {game.num_players()} players; spiral games have exactly two seats"
    if kind.utility not in (pyspiel.GameType.Utility.ZERO_SUM, pyspiel.GameType.Utility.CONSTANT_SUM):
        return f"its utility is {kind.utility.name.lower()}; spiral trains on zero-sum (or constant-sum) games"
    if kind.chance_mode == pyspiel.GameType.ChanceMode.SAMPLED_STOCHASTIC:
        return "its chance events are sampled inside OpenSpiel, so they cannot be drawn from spiral's reset seed"
    if not (kind.provides_information_state_string or kind.provides_observation_string):
        return "it provides neither information-state nor observation strings to show a player"
    return None


class OpenSpielGame(Game):
    """A spiral view of one OpenSpiel game; subclasses made by `game_class` fix `openspiel_name`."""

    openspiel_name = ""
    name = ""
    description = ""

    def __init__(self, **params: Any) -> None:
        import pyspiel

        try:
            self.openspiel_game = pyspiel.load_game(self.openspiel_name, params)
        except pyspiel.SpielError as err:
            raise ValueError(f"{self.name}: OpenSpiel refused the parameters {params}: {err}") from None
        reason = refusal(self.openspiel_game)
        if reason is not None:
            raise ValueError(f"{self.name} cannot be a spiral game: {reason}")
        self.params = dict(params)
        self.prose = renderer_for(self.openspiel_name)
        self.description = self.prose.rules(self.openspiel_game)
        self.max_turns = max(1, self.openspiel_game.max_game_length())
        self._offset = 0.0
        if self.openspiel_game.get_type().utility == pyspiel.GameType.Utility.CONSTANT_SUM:
            self._offset = self.openspiel_game.utility_sum() / 2  # shift constant-sum payoffs to zero-sum
        self.reset(0)

    # -- setup -------------------------------------------------------------------------------

    def reset(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self.state = self.openspiel_game.new_initial_state()
        self.moves: list[tuple[int, int, str]] = []  # (seat, OpenSpiel action, move name), public in order
        self._deal()

    def reset_history(self, history: Sequence[int]) -> None:
        """Start from a fixed OpenSpiel action history (chance outcomes included), e.g. to reach an information set."""
        self._rng = random.Random(0)
        self.state = self.openspiel_game.new_initial_state()
        self.moves = []
        for action in history:
            if not self.state.is_chance_node():
                self.moves.append((self.state.current_player(), action, self._name(action)))
            self.state.apply_action(action)
        self._deal()

    def _deal(self) -> None:
        """Resolve chance nodes with the reset seed's generator (cards, dice, public cards)."""
        while self.state.is_chance_node():
            outcomes, probs = zip(*self.state.chance_outcomes())
            self.state.apply_action(self._rng.choices(outcomes, weights=probs)[0])

    # -- state -------------------------------------------------------------------------------

    def current_player(self) -> int:
        return int(self.state.current_player())

    def is_terminal(self) -> bool:
        return bool(self.state.is_terminal())

    def _name(self, action: int) -> str:
        return self.prose.move_name(self.state, action)

    def _named_actions(self) -> dict[str, int]:
        if self.state.is_terminal():
            return {}
        named = {self._name(a): a for a in self.state.legal_actions()}
        if len({normalize_move(n) for n in named}) != len(self.state.legal_actions()):
            raise ValueError(f"{self.name}: two legal moves share a name in state {self.state.history()}: {list(named)}")
        return named

    def legal_actions(self) -> list[str]:
        return list(self._named_actions())

    def action_id(self, move: str) -> int:
        """The OpenSpiel action of a legal move string."""
        named = self._named_actions()
        if move not in named:
            raise IllegalMoveError(f"{move[:200]!r} is not legal here; legal: {list(named)}")
        return named[move]

    def apply_action(self, action: str) -> None:
        action_id = self.action_id(action)
        self.moves.append((self.current_player(), action_id, action))
        self.state.apply_action(action_id)
        self._deal()

    def returns(self) -> list[float]:
        if not self.state.is_terminal():
            return [0.0, 0.0]
        return [float(r) - self._offset for r in self.state.returns()]

    # -- what a seat sees ----------------------------------------------------------------------

    def observation(self, player: int) -> str:
        text = self.prose.observation(self, player)
        if self.is_terminal():
            return f"{text}\nGame over. Your result: {self.returns()[player]:+g}."
        if self.current_player() == player:
            text += "\nLegal moves: " + ", ".join(f"[{m}]" for m in self.legal_actions())
        return text

    def information_state(self, player: int) -> str:
        """OpenSpiel's information-state string (the key its tabular policies use), else its observation string."""
        if self.openspiel_game.get_type().provides_information_state_string:
            return self.state.information_state_string(player)
        return self.state.observation_string(player)


def information_set_histories(game: Any) -> dict[str, list[int]]:
    """Information-state key → the history of one state where that seat moves (for exploitability and CFR);
    ValueError past `MAX_STATES` or `MAX_INFORMATION_SETS`."""
    import pyspiel

    if not game.get_type().provides_information_state_string:
        raise ValueError("OpenSpiel provides no information-state strings for it")
    keys: dict[str, list[int]] = {}
    stack = [game.new_initial_state()]
    visited = 0
    while stack:
        state = stack.pop()
        visited += 1
        if visited > MAX_STATES:
            raise ValueError(f"its game tree has more than {MAX_STATES} states")
        if state.is_terminal():
            continue
        if state.current_player() == pyspiel.PlayerId.CHANCE:
            children = [a for a, _ in state.chance_outcomes()]
        else:
            keys.setdefault(state.information_state_string(), state.history())
            if len(keys) > MAX_INFORMATION_SETS:
                raise ValueError(f"it has more than {MAX_INFORMATION_SETS} information sets")
            children = state.legal_actions()
        stack += [state.child(a) for a in children]
    return keys


@functools.cache
def game_class(openspiel_name: str) -> type[OpenSpielGame]:
    """The spiral `Game` class for `openspiel:<openspiel_name>` (parameters are its constructor's keywords)."""
    import pyspiel

    known = pyspiel.registered_names()
    if openspiel_name not in known:
        close = difflib.get_close_matches(openspiel_name, known, n=1)
        hint = f" Did you mean 'openspiel:{close[0]}'?" if close else ""
        raise GameNotFound(f"OpenSpiel has no game {openspiel_name!r}.{hint}")
    cls_name = "OpenSpiel_" + "".join(part.capitalize() for part in openspiel_name.split("_"))
    return type(cls_name, (OpenSpielGame,), {"openspiel_name": openspiel_name, "name": f"{SCHEME}:{openspiel_name}",
                                             "__module__": __name__})
