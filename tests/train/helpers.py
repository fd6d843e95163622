"""Helpers for end-to-end training tests: a tiny, fast config and metric readers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.launch import clean_env

REPO = Path(__file__).parents[2]

TINY_OVERRIDES = [
    "rollout.concurrent_games=8", "rollout.samples_per_step=16", "rollout.transcripts_every=1",
    "eval.every=2", "eval.episodes=4", "eval.opponents=[random]",
    "checkpoint.every=2", "checkpoint.keep=2", "trainer.micro_batch_size=16", "algo.minibatches=1",
]


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]


def deterministic_view(row: dict) -> dict:
    """Metrics that must replay exactly (timings and throughput cannot)."""
    return {k: v for k, v in row.items() if not (k.startswith("time/") or k.startswith("perf/"))}


def spiral_train_cmd(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "spiral.cli", "train", str(REPO / "configs" / "kuhn_tiny.yaml"),
            f"run.dir={run_dir}", *TINY_OVERRIDES, *extra]


def run_train(run_dir: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = clean_env()
    proc = subprocess.run(spiral_train_cmd(run_dir, *extra), capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        pytest.fail(f"spiral train failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def kill_rank_after_first_checkpoint(cmd: list[str], env: dict[str, str], run_dir: Path, rank: int, *,
                                     checkpoint_wait_s: float, exit_wait_s: float) -> subprocess.CompletedProcess:
    """Launch `cmd` (a torchrun of `spiral train` into `run_dir`), SIGKILL the worker of `rank` once the first
    checkpoint exists, and return how the launcher ended (stdout and stderr together)."""
    launcher = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ckpt = run_dir / "checkpoints" / "step-000001"
    deadline = time.time() + checkpoint_wait_s
    while not ckpt.exists() and time.time() < deadline and launcher.poll() is None:
        time.sleep(0.5)
    assert ckpt.exists(), "no checkpoint appeared"
    workers = [p for p in psutil.Process(launcher.pid).children(recursive=True) if "spiral.cli" in " ".join(p.cmdline())]
    victim = next(p for p in workers if p.environ().get("RANK") == str(rank))
    victim.send_signal(signal.SIGKILL)
    output, _ = launcher.communicate(timeout=exit_wait_s)  # no hang: the job must end on its own
    return subprocess.CompletedProcess(cmd, launcher.returncode, output)
