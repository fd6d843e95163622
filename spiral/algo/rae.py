"""Role-conditioned advantage estimation (RAE): per-(game, seat) EMA baselines of the return.

Pure Python, no torch.distributed: every rank applies the same samples in the same order and so
keeps identical baselines.
"""

from __future__ import annotations

from collections.abc import Sequence


class RoleBaselines:
    """EMA baselines b[game, seat], starting at 0 (the paper's initial value)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, int], float] = {}

    def get(self, game: str, seat: int) -> float:
        return self._values.get((game, seat), 0.0)

    def update(self, game: str, seat: int, ret: float, decay: float) -> None:
        """b ← decay·b + (1 − decay)·ret."""
        self._values[(game, seat)] = decay * self.get(game, seat) + (1.0 - decay) * ret

    def items(self) -> list[tuple[tuple[str, int], float]]:
        return sorted(self._values.items())

    def state_dict(self) -> dict[str, dict[str, float]]:
        """JSON-able form: {game: {seat (as str): baseline}}."""
        out: dict[str, dict[str, float]] = {}
        for (game, seat), value in self.items():
            out.setdefault(game, {})[str(seat)] = value
        return out

    def load_state_dict(self, state: dict[str, dict[str, float]]) -> None:
        self._values = {(game, int(seat)): float(v) for game, seats in state.items() for seat, v in seats.items()}


def rae_advantages(
    keys: Sequence[tuple[str, int]],
    returns: Sequence[float],
    baselines: RoleBaselines,
    decay: float,
    enabled: bool = True,
) -> list[float]:
    """Advantage R − b[G, p] for each (game, seat) key, reading the baseline before updating it.

    Samples are processed sequentially in the given order, so callers must give an order every rank
    agrees on. With `enabled=False` the raw returns come back and the baselines are left untouched.
    """
    if len(keys) != len(returns):
        raise ValueError(f"rae_advantages: {len(keys)} keys but {len(returns)} returns")
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"rae_advantages: decay must be in [0, 1), got {decay}")
    if not enabled:
        return [float(r) for r in returns]
    advantages = []
    for (game, seat), ret in zip(keys, returns):
        advantages.append(float(ret) - baselines.get(game, seat))
        baselines.update(game, seat, float(ret), decay)
    return advantages
