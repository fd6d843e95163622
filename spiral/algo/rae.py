"""Role-conditioned advantage estimation (RAE): EMA baselines of the return per (game, seat), optionally per state.

Pure Python, no torch.distributed: every rank applies the same samples in the same order and so
keeps identical baselines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def state_key(prompt_ids: Sequence[int]) -> str:
    """A stable short name for a prompt (the same on every rank, process and resume)."""
    return hashlib.blake2b(",".join(map(str, prompt_ids)).encode(), digest_size=8).hexdigest()


def _ema(old: float, ret: float, decay: float) -> float:
    return decay * old + (1.0 - decay) * ret


class RoleBaselines:
    """EMA baselines b[game, seat], starting at 0 (the paper's initial value), and optional ones per state.

    A state's baseline b[game, seat, state] starts at b[game, seat] the first time the state is seen, so where
    states never repeat it is the paper's per-seat baseline. At most `max_states` are kept; the least recently
    used goes first.
    """

    def __init__(self, max_states: int = 65536) -> None:
        self._values: dict[tuple[str, int], float] = {}
        self._states: dict[tuple[str, int, str], float] = {}  # insertion order = recency order
        self.max_states = max_states

    def get(self, game: str, seat: int) -> float:
        return self._values.get((game, seat), 0.0)

    def get_state(self, game: str, seat: int, state: str) -> float:
        return self._states.get((game, seat, state), self.get(game, seat))

    def update(self, game: str, seat: int, ret: float, decay: float, state: str | None = None) -> None:
        """b ← decay·b + (1 − decay)·ret, for the seat and (when given) the state."""
        if state is not None:
            key = (game, seat, state)
            self._states[key] = _ema(self._states.pop(key, self.get(game, seat)), ret, decay)  # re-insert: most recent
            if len(self._states) > self.max_states:
                del self._states[next(iter(self._states))]
        self._values[(game, seat)] = _ema(self.get(game, seat), ret, decay)

    def items(self) -> list[tuple[tuple[str, int], float]]:
        return sorted(self._values.items())

    def num_states(self) -> int:
        return len(self._states)

    def state_dict(self) -> dict:
        """JSON-able form: {"seats": {game: {seat (as str): baseline}}, "states": [[game, seat, state, b], ...]}."""
        seats: dict[str, dict[str, float]] = {}
        for (game, seat), value in self.items():
            seats.setdefault(game, {})[str(seat)] = value
        return {"seats": seats, "states": [[g, s, k, v] for (g, s, k), v in self._states.items()]}

    def load_state_dict(self, state: dict) -> None:
        """Loads `state_dict()`'s form, or the bare {game: {seat: baseline}} that checkpoints held before states."""
        seats = state["seats"] if "seats" in state else state
        self._values = {(game, int(seat)): float(v) for game, by_seat in seats.items() for seat, v in by_seat.items()}
        self._states = {(g, int(s), k): float(v) for g, s, k, v in state.get("states", [])}


def rae_advantages(
    keys: Sequence[tuple[str, int]],
    returns: Sequence[float],
    baselines: RoleBaselines,
    decay: float,
    enabled: bool = True,
    states: Sequence[str | None] | None = None,
) -> list[float]:
    """Advantage R − b for each (game, seat) key, reading the baseline before updating it.

    With `states` (a `state_key` per sample) b is the state's baseline; without them, or where a sample's is
    None, the seat's. Samples are processed sequentially in the given order, so callers must give an order every
    rank agrees on. With `enabled=False` the raw returns come back and the baselines are left untouched.
    """
    if len(keys) != len(returns):
        raise ValueError(f"rae_advantages: {len(keys)} keys but {len(returns)} returns")
    if states is not None and len(states) != len(keys):
        raise ValueError(f"rae_advantages: {len(keys)} keys but {len(states)} states")
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"rae_advantages: decay must be in [0, 1), got {decay}")
    if not enabled:
        return [float(r) for r in returns]
    advantages = []
    for i, ((game, seat), ret) in enumerate(zip(keys, returns)):
        state = None if states is None else states[i]
        baseline = baselines.get(game, seat) if state is None else baselines.get_state(game, seat, state)
        advantages.append(float(ret) - baseline)
        baselines.update(game, seat, float(ret), decay, state)
    return advantages
