"""Plugin games with honest bugs for end-to-end training tests (loaded as `tests.train.plugin_games:Name`).

Both pass `spiral train`'s conformance check, which plays seeds run.seed .. run.seed + 7, as a real
plugin with a rare bug would; training then meets the bug.
"""

from __future__ import annotations

from tests.games.test_check_game import Race


class HugeStakes(Race):
    """Payoffs of ±1e30: finite and zero-sum, so the conformance check accepts them, but the policy
    gradient they produce overflows float32, so every optimizer step is non-finite and must be skipped."""

    name = "huge_stakes"

    def returns(self) -> list[float]:
        return [r * 1e30 for r in super().returns()]


class CrashesLate(Race):
    """apply_action raises on the second legal move of games seeded 1000 or more: never in the conformance
    check, at once in training (its game seeds are 31-bit)."""

    name = "crashes_late"

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.seed = seed

    def apply_action(self, action: str) -> None:
        if self.seed >= 1000 and self.moves == 1 and action in self.legal_actions():
            raise RuntimeError("plugin bug: score table has no entry")
        super().apply_action(action)
