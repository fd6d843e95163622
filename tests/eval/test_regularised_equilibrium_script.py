"""scripts/kuhn_regularised_equilibrium.py: the regularised best response and the `--reference` read-out."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pyspiel = pytest.importorskip("pyspiel")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kuhn_regularised_equilibrium.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("kuhn_regularised_equilibrium", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_step0(run: Path, probabilities: dict[str, float]) -> None:
    run.mkdir()
    rows = [{"step": 0, **{f"eval/kuhn_poker/policy/{k}": v for k, v in probabilities.items()}}, {"step": 1}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def step0_metrics(bet: float) -> dict[str, float]:
    """Every information set bets/calls with probability `bet`, named by spiral's move words."""
    from spiral.games.kuhn_poker import KuhnPoker

    out = {}
    for card in "012":
        for history in ("", "p", "b", "pb"):
            key = card + history
            passing, betting = (KuhnPoker.action_for_letter(key, letter) for letter in "pb")
            out[f"{key}/{passing}"], out[f"{key}/{betting}"] = 1.0 - bet, bet
    return out


def test_the_response_leans_toward_the_reference_and_the_better_move(script):
    q = np.array([0.0, 1.0])
    for kind in ("forward", "reverse"):
        strong_anchor = script.regularised_response(q, np.array([0.8, 0.2]), 1e3, kind)
        np.testing.assert_allclose(strong_anchor, [0.8, 0.2], atol=1e-3)
        weak_anchor = script.regularised_response(q, np.array([0.8, 0.2]), 1e-3, kind)
        assert weak_anchor[1] > 0.99


def test_a_reference_read_from_a_run_is_its_step_0_policy(script, tmp_path):
    game = pyspiel.load_game("kuhn_poker")
    write_step0(tmp_path / "run", step0_metrics(bet=0.25))
    table = script.reference_from_run(tmp_path / "run", game)
    np.testing.assert_allclose(table.action_probability_array, [[0.75, 0.25]] * 12)


def test_a_uniform_reference_settles_where_the_default_does(script, tmp_path):
    game = pyspiel.load_game("kuhn_poker")
    write_step0(tmp_path / "run", step0_metrics(bet=0.5))
    reference = script.reference_from_run(tmp_path / "run", game)
    default = script.settle(game, 0.2, "forward", iterations=200)
    assert script.settle(game, 0.2, "forward", reference, iterations=200) == pytest.approx(default, abs=1e-12)
    # A reference that bets much less moves the fixed point, and so its exploitability.
    write_step0(tmp_path / "skewed", step0_metrics(bet=0.1))
    skewed = script.reference_from_run(tmp_path / "skewed", game)
    assert abs(script.settle(game, 0.2, "forward", skewed, iterations=200) - default) > 1e-3


def test_a_run_without_a_read_out_is_refused_by_name(script, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 0, "eval/kuhn_poker/exploitability": 0.4}\n')
    with pytest.raises(SystemExit, match="no step-0 eval/kuhn_poker/policy"):
        script.reference_from_run(tmp_path / "run", pyspiel.load_game("kuhn_poker"))
