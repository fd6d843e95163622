"""`spiral train` refuses a broken game or a context too short for any prompt before it writes anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from spiral.cli import main
from spiral.games import IllegalMoveError
from tests.games.test_check_game import Race

TINY = Path(__file__).parents[2] / "configs" / "kuhn_tiny.yaml"


class CrashesOnJunk(Race):
    """A plugin whose apply_action raises ValueError, not IllegalMoveError, on text it cannot read."""

    def apply_action(self, action: str) -> None:
        if action not in ("1", "2"):
            int(action)  # ValueError: the junk a model writes would crash training
            raise IllegalMoveError(action)
        super().apply_action(action)


class NeverEnds(Race):
    max_turns = 10**9

    def is_terminal(self) -> bool:
        return False


@pytest.mark.parametrize(("game", "reason"), [
    ("CrashesOnJunk", "apply_action crashed on the illegal move"),
    ("NeverEnds", "did not terminate within max_turns=10000 (capped at 10000"),
])
def test_a_game_failing_the_conformance_check_is_refused(tmp_path, capsys, game, reason) -> None:
    spec = f"tests.train.test_preflight:{game}"
    code = main(["train", str(TINY), f"run.dir={tmp_path / 'run'}", f"games=[{{name: '{spec}'}}]", "eval.games=[]"])
    err = capsys.readouterr().err
    assert code == 2 and f"games[0]: game '{spec}' fails spiral's conformance check" in err and reason in err, err
    assert not (tmp_path / "run").exists()


def test_a_context_shorter_than_the_opening_prompt_is_refused(tmp_path, capsys) -> None:
    code = main(["train", str(TINY), f"run.dir={tmp_path / 'run'}", "model.max_model_len=16"])
    err = capsys.readouterr().err
    assert code == 2 and "model.max_model_len (16) is too small" in err and "raise it to at least" in err, err
    assert not (tmp_path / "run").exists()


def test_a_free_form_game_with_action_constraint_choice_is_refused(tmp_path, capsys) -> None:
    pytest.importorskip("textarena")
    game = "textarena:SimpleNegotiation-v0"  # kuhn_tiny.yaml sets rollout.action_constraint: choice
    code = main(["train", str(TINY), f"run.dir={tmp_path / 'run'}", f"games=[{{name: '{game}'}}]", "eval.games=[]"])
    err = capsys.readouterr().err
    assert code == 2 and f"games[0]: game '{game}' is free-form" in err and "action_constraint: none" in err, err
    assert not (tmp_path / "run").exists()
