"""MetricsLogger: metrics.jsonl always, and W&B that falls back to offline instead of failing a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spiral.tracking import MetricsLogger
from tests.train.helpers import REPO

wandb = pytest.importorskip("wandb")


def _offline_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))


def _log_two_steps(run_dir: Path) -> None:
    logger = MetricsLogger(run_dir, enabled=True, console=False, wandb_project="spiral-test", config={"seed": 0})
    logger.log(1, {"train/loss": 0.5}, 2)
    logger.log(2, {"train/loss": 0.25}, 2)
    logger.close()


def test_without_a_key_wandb_writes_an_offline_run(tmp_path, monkeypatch):
    for var in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    _log_two_steps(tmp_path)
    runs = _offline_runs(tmp_path)
    assert len(runs) == 1 and runs[0].stat().st_size > 0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["train/loss"] for r in rows] == [0.5, 0.25]


@pytest.mark.slow
def test_an_unreachable_server_falls_back_to_offline(tmp_path):
    # A fresh process: wandb keeps one service per process, with the settings of its first run.
    env = {**os.environ, "WANDB_API_KEY": "x" * 40, "WANDB_MODE": "online", "WANDB_SILENT": "true",
           "WANDB_BASE_URL": "http://127.0.0.1:9",  # nothing listens on the discard port
           "WANDB_INIT_TIMEOUT": "10"}
    code = ("from pathlib import Path; from tests.train.test_tracking import _log_two_steps; "
            f"_log_two_steps(Path({str(tmp_path)!r}))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "logging offline" in proc.stderr
    assert len(_offline_runs(tmp_path)) == 1
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
