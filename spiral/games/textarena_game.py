"""`textarena:<env id>`: a TextArena two-player environment as a spiral `Game` (optional extra `textarena`).

The model sees the environment's own messages; the environment's move format and invalid-move rules decide
what is legal (a move it flags invalid is refused with `IllegalMoveError` and undone, so spiral's invalid-move
accounting applies). Environments whose moves cannot be listed are free-form only.
"""

from __future__ import annotations

import copy
import difflib
import functools
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from spiral.games.base import Game, IllegalMoveError
from spiral.games.parsing import last_boxed, match_boxed_action
from spiral.games.registry import GameNotFound

SCHEME = "textarena"


def _kuhn_moves(env: Any) -> list[str]:
    return list(env.state.game_state["current_legal_action_tree"])


def _tic_tac_toe_moves(env: Any) -> list[str]:
    board = env.state.game_state["board"]
    return [str(r * 3 + c) for r in range(3) for c in range(3) if board[r][c] == ""]


# Environments whose state says which moves are legal, by environment class: every version of an id shares it.
# Any other environment is free-form: the model writes a move and the environment judges it.
MOVE_LISTS: dict[str, Callable[[Any], list[str]]] = {
    "KuhnPokerEnv": _kuhn_moves,
    "TicTacToeEnv": _tic_tac_toe_moves,
}


class TextArenaGame(Game):
    """One TextArena environment; subclasses made by `game_class` fix `env_id`. Parameters go to its constructor."""

    env_id = ""
    name = ""
    description = ""

    def __init__(self, **params: Any) -> None:
        try:
            import textarena as ta
        except ImportError:
            raise ImportError(f"{self.name} needs TextArena: pip install 'spiral[textarena]'") from None
        self.params = dict(params)
        self._env = self._make_env()
        self._random: tuple[Any, ...] = random.Random(0).getstate()  # replaced by reset(seed)
        self._formatter = ta.wrappers.ActionFormattingWrapper(self._env)  # TextArena's rule: bracket a bare move
        self._lister = MOVE_LISTS.get(type(self._env).__name__)
        self.free_form = self._lister is None
        self.description = (f"TextArena environment {self.env_id}. Its own rules and messages follow; "
                            "answer with your move in the format they ask for.")
        try:
            self.reset(0)
        except Exception as err:  # noqa: BLE001 - whatever the environment raises for two players is the reason
            raise ValueError(f"{self.name} cannot be played by two players: {err!r}") from None
        if self._env.state.num_players != 2:
            raise ValueError(f"{self.name} is not a two-player environment")

    def _make_env(self) -> Any:
        """A fresh, unwrapped environment (some keep state across resets, e.g. Kuhn Poker's shuffled deck)."""
        import textarena as ta

        try:
            env = ta.make(self.env_id, **self.params)
        except TypeError as err:
            raise ValueError(f"{self.name}: bad parameters {self.params}: {err}") from None
        while isinstance(env, ta.Wrapper):  # spiral renders observations and reads moves itself
            env = env.env
        return env

    @contextmanager
    def _own_random(self) -> Iterator[None]:
        """TextArena environments draw from the global `random` module: give each game its own stream."""
        outer = random.getstate()
        random.setstate(self._random)
        try:
            yield
        finally:
            self._random = random.getstate()
            random.setstate(outer)

    def reset(self, seed: int) -> None:
        self._random = random.Random(seed).getstate()
        self._seen: list[list[tuple[int, str]]] = [[], []]
        self._env = self._make_env()
        with self._own_random():
            self._env.reset(num_players=2, seed=seed)
        self._collect()

    def _collect(self) -> None:
        """Move the environment's new messages for each seat into that seat's transcript."""
        for player in (0, 1):
            self._seen[player] += [(sender, message) for sender, message, _ in self._env.state.observations[player]]
            self._env.state.observations[player] = []

    # -- state -------------------------------------------------------------------------------

    def current_player(self) -> int:
        return int(self._env.state.current_player_id)

    def is_terminal(self) -> bool:
        return bool(self._env.state.done)

    def legal_actions(self) -> list[str]:
        """The environment's legal moves, or [] for a free-form environment (its moves cannot be listed)."""
        if self.is_terminal() or self._lister is None:
            return []
        return self._lister(self._env)

    def parse_action(self, text: str) -> str | None:
        """The last `\\boxed{...}`: matched to the legal moves, or passed on as written in a free-form game."""
        if self._lister is not None:
            return match_boxed_action(text, self.legal_actions())
        content = last_boxed(text)
        return content.strip() if content and content.strip() else None

    def apply_action(self, action: str) -> None:
        if self.is_terminal():
            raise IllegalMoveError("the game is over")
        if self._lister is not None and action not in self.legal_actions():
            raise IllegalMoveError(f"{action[:200]!r} is not legal here; legal: {self.legal_actions()}")
        saved = (copy.deepcopy(self._env), self._random, [list(s) for s in self._seen])
        errors = self._env.state.error_count
        with self._own_random():
            self._env.step(self._formatter.action(action))
        if self._env.state.error_count > errors or any(info.get("invalid_move") for info in self._env.state.game_info.values()):
            reason = self._env.state.observations[self.current_player()][-1:] or self._env.state.game_info
            self._env, self._random, self._seen = saved
            raise IllegalMoveError(f"{self.env_id} refused {action[:200]!r}: {reason}")
        self._collect()

    def returns(self) -> list[float]:
        rewards = self._env.state.rewards if self.is_terminal() else None
        if not rewards:
            return [0.0, 0.0]
        values = [float(rewards.get(p, 0.0)) for p in (0, 1)]
        mean = sum(values) / 2  # TextArena's two-player payoffs are +1/-1/0; shift any other constant sum to zero
        return [v - mean for v in values]

    def observation(self, player: int) -> str:
        """The seat's messages so far, formatted as TextArena's LLM observation wrapper does."""
        roles = self._env.state.role_mapping
        return "".join(f"\n[{'GAME' if sender < 0 else roles.get(sender, f'Player {sender}')}] {message}"
                       for sender, message in self._seen[player]).strip("\n")


@functools.cache
def game_class(env_id: str) -> type[TextArenaGame]:
    """The spiral `Game` class for `textarena:<env_id>`."""
    try:
        from textarena.envs.registration import ENV_REGISTRY
    except ImportError:
        raise GameNotFound(f"textarena:{env_id} needs TextArena: pip install 'spiral[textarena]'") from None
    if env_id not in ENV_REGISTRY:
        close = difflib.get_close_matches(env_id, list(ENV_REGISTRY), n=1)
        hint = f" Did you mean 'textarena:{close[0]}'?" if close else ""
        raise GameNotFound(f"TextArena has no environment {env_id!r}.{hint}")
    cls_name = "TextArena_" + "".join(ch for ch in env_id if ch.isalnum())
    return type(cls_name, (TextArenaGame,), {"env_id": env_id, "name": f"{SCHEME}:{env_id}", "__module__": __name__})
