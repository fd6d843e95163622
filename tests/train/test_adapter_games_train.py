"""A few training steps on adapter games: a TextArena environment, and the shipped Leduc config (smoke test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.launch import clean_env
from tests.train.helpers import REPO, read_metrics, run_train

pytestmark = pytest.mark.slow


def test_textarena_tictactoe_trains_and_evaluates(tmp_path: Path) -> None:
    pytest.importorskip("textarena")
    game = "textarena:TicTacToe-v0"
    run_dir = tmp_path / "run"
    run_train(run_dir, "trainer.steps=2", f"games=[{{name: '{game}'}}]", f"eval.games=[{game}]", "eval.episodes=2",
              timeout=1200)
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows][-1] == 2
    assert rows[-1][f"eval/{game}/random/games"] == 4  # two games a seat against random
    assert all(r["rollout/invalid_rate"] == 0.0 for r in rows[1:])  # choice among the environment's moves


def test_leduc_config_runs_and_reports_exact_exploitability(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "spiral.cli", "train", str(REPO / "configs" / "leduc_tiny.yaml"), f"run.dir={run_dir}",
           "trainer.steps=1", "rollout.concurrent_games=8", "rollout.samples_per_step=16", "eval.every=1",
           "eval.episodes=2", "eval.opponents=[random]", "checkpoint.every=1", "logging.console=false"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=clean_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    last = read_metrics(run_dir)[-1]
    uniform = 4.747222222222222 / 2
    # The untrained tiny model is close to uniform, and no policy is below an equilibrium's 0.
    assert 0.0 <= last["eval/openspiel:leduc_poker/exploitability"] <= 2 * uniform
    assert last["eval/openspiel:leduc_poker/random/games"] == 4
