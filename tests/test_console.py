"""The console: plain progress lines off a terminal, a live line on one, third-party output behind `-v`."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from spiral.console import StepProgress, format_duration, headline

REPO = Path(__file__).resolve().parents[1]


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, width=200, color_system=None), buffer


def test_plain_lines_off_a_terminal_carry_steps_timing_and_headline_metrics(monkeypatch) -> None:
    clock = iter([100.0, 102.0, 104.0])
    monkeypatch.setattr("spiral.console.time.monotonic", lambda: next(clock))
    console, buffer = _console(terminal=False)
    progress = StepProgress(console, total=10)
    progress.update(0, {"eval/kuhn_poker/exploitability": 0.49})
    progress.update(1, {"rollout/return_mean": 0.25, "rollout/invalid_rate": 0.0, "loss/policy": -0.5})
    progress.update(2, {"loss/policy": float("nan")})
    lines = buffer.getvalue().splitlines()
    assert lines == [
        "step 0/10 expl=0.49",
        "step 1/10 ret=0.25 inv=0 loss=-0.5 s/step=2 eta=18s",
        "step 2/10 loss=nan s/step=2 eta=16s",
    ]


def test_win_rates_name_the_opponent_and_the_game_when_there_are_several() -> None:
    one = headline({"eval/tic_tac_toe/random/win_rate": 0.7})
    two = headline({"eval/tic_tac_toe/random/win_rate": 0.7, "eval/kuhn_poker/exploitability": 0.2})
    assert one == [("win/random", 0.7)]
    assert ("win/tic_tac_toe/random", 0.7) in two and ("expl/kuhn_poker", 0.2) in two


def test_a_terminal_gets_one_live_line_and_a_kept_line_per_evaluation() -> None:
    console, buffer = _console(terminal=True)
    progress = StepProgress(console, total=3)
    progress.update(1, {"rollout/return_mean": 0.1})
    progress.update(2, {"rollout/return_mean": 0.2, "eval/kuhn_poker/exploitability": 0.3})
    progress.update(3, {"rollout/return_mean": 0.3})
    progress.close()
    out = buffer.getvalue()
    assert "step 2/3 ret=0.2 expl=0.3" in out  # the evaluation's permanent line
    assert "3/3" in out and "expl=0.3" in out.rsplit("3/3", 1)[1]  # the live line keeps the last evaluation
    assert "step 1/3" not in out and "step 3/3" not in out  # no scrolling line for ordinary steps


def test_durations() -> None:
    assert [format_duration(s) for s in (0, 42, 185, 3725)] == ["0s", "42s", "3m05s", "1h02m"]


def _eval_output(*flags: str) -> str:
    """`spiral eval` of the tiny model on a few Kuhn hands, in a fresh interpreter: what a user sees."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_DISABLE", "TRANSFORMERS_", "VLLM_"))}
    env["PYTHONPATH"] = str(REPO)
    command = [sys.executable, "-m", "spiral.cli", "eval", "builtin:tiny", "--games", "kuhn_poker", "--episodes",
               "2", "--template", "direct", "--action-constraint", "choice", "--max-model-len", "1024", "--json",
               *flags]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_third_party_bars_are_hidden_by_default_and_shown_with_verbose() -> None:
    assert "Loading weights" not in _eval_output()
    assert "Loading weights" in _eval_output("-v")
