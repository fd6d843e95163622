"""`check_game`: every registered game passes; broken games are rejected, each with its reason."""

from __future__ import annotations

import random

import pytest

from spiral.games import (
    Game,
    GameCheckError,
    IllegalMoveError,
    check_game,
    list_games,
    resolve_game,
)


@pytest.mark.parametrize("name", [info.name for info in list_games()])
def test_every_registered_game_passes(name):
    check_game(resolve_game(name), games=200)


@pytest.mark.parametrize(
    "name, params",
    [
        ("kuhn_poker", {"hands": 5, "deck_size": 5}),
        ("kuhn_poker", {"hands": 2, "win_loss": True}),
        ("tic_tac_toe", {"size": 5, "win_length": 4}),
        ("simple_negotiation", {"resources": 3, "max_turns": 6}),
        ("liars_dice", {"dice": 1, "faces": 3}),
        ("pig_dice", {"target": 10, "max_turns": 30}),
    ],
)
def test_game_variants_pass(name, params):
    check_game(resolve_game(name), games=40, params=params)


class Race(Game):
    """A well-formed toy: seats add 1 or 2 to a seeded counter; whoever reaches 6 wins."""

    name = "race_test_game"
    description = "Add 1 or 2; reach 6 to win."
    max_turns = 10

    def reset(self, seed: int) -> None:
        self.total = random.Random(seed).randint(0, 2)
        self.moves = 0

    def current_player(self) -> int:
        return self.moves % 2

    def observation(self, player: int) -> str:
        return f"total {self.total}, move {self.moves}"

    def legal_actions(self) -> list[str]:
        return [] if self.is_terminal() else ["1", "2"]

    def apply_action(self, action: str) -> None:
        if action not in self.legal_actions():
            raise IllegalMoveError(action)
        self.total += int(action)
        self.moves += 1

    def is_terminal(self) -> bool:
        return self.total >= 6

    def returns(self) -> list[float]:
        if not self.is_terminal():
            return [0.0, 0.0]
        winner = (self.moves - 1) % 2
        return [1.0, -1.0] if winner == 0 else [-1.0, 1.0]


def test_the_toy_game_itself_passes():
    check_game(Race)


class NeverEnds(Race):
    def is_terminal(self) -> bool:
        return False


class NotZeroSum(Race):
    def returns(self) -> list[float]:
        return [1.0, 1.0] if self.is_terminal() else [0.0, 0.0]


class UsesGlobalRandom(Race):
    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.total = random.randint(0, 2)  # ignores the seed


class LeaksAcrossResets(Race):
    games_started = 0

    def reset(self, seed: int) -> None:
        super().reset(seed)
        type(self).games_started += 1
        self.moves = type(self).games_started % 2  # who moves first depends on history, not the seed


class StuckWithoutMoves(Race):
    def legal_actions(self) -> list[str]:
        return [] if self.total >= 4 else super().legal_actions()


class CrashesOnJunk(Race):
    def apply_action(self, action: str) -> None:
        self.total += int(action)  # ValueError on junk, not IllegalMoveError
        self.moves += 1


class AcceptsJunk(Race):
    def apply_action(self, action: str) -> None:
        self.total += 1 if action not in ("1", "2") else int(action)
        self.moves += 1


class ParserCrashes(Race):
    def parse_action(self, text: str) -> str | None:
        return text.split("{")[1].split("}")[0]  # IndexError on text without braces


class ParserLosesLegalMoves(Race):
    def parse_action(self, text: str) -> str | None:
        return None


class NoDescription(Race):
    description = ""


@pytest.mark.parametrize(
    "broken, reason",
    [
        (NeverEnds, "did not terminate within max_turns=10"),
        (NotZeroSum, "not zero-sum"),
        (UsesGlobalRandom, "not deterministic"),
        (LeaksAcrossResets, "not deterministic"),
        (StuckWithoutMoves, "no legal action before the end"),
        (CrashesOnJunk, "apply_action crashed on the illegal move"),
        (AcceptsJunk, "apply_action accepted the illegal move"),
        (ParserCrashes, "parse_action crashed"),
        (ParserLosesLegalMoves, "parse_action of the boxed legal move"),
        (NoDescription, "non-empty `name` and `description`"),
    ],
)
def test_broken_games_are_rejected_with_their_reason(broken, reason):
    with pytest.raises(GameCheckError, match=reason):
        check_game(broken, games=50)


def test_factories_and_params_are_accepted():
    check_game(lambda: Race(), games=10)
    with pytest.raises(GameCheckError, match="not a spiral.games.Game"):
        check_game(lambda: object(), games=1)


class EndlessWithGrowingView(Race):
    """Never ends, claims a billion-move limit, and shows the whole history in every observation."""

    max_turns = 10**9

    def is_terminal(self) -> bool:
        return False

    def observation(self, player: int) -> str:
        return "move " * self.moves


def test_a_never_ending_game_stops_at_the_turn_cap_in_bounded_memory():
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(GameCheckError, match="did not terminate within max_turns=1500 \\(capped at 1500"):
            check_game(EndlessWithGrowingView, games=1, turn_cap=1500)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Keeping every observation would hold ~11 MB by the cap (and grow without bound without one).
    assert peak < 3 * 2**20, peak
