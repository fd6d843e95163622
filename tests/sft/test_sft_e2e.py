"""`spiral sft` end to end on the built-in tiny model: loss falls, outputs load, resume after SIGKILL, bad data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from spiral.agents import make_agent
from spiral.config.schema import GameSpec
from spiral.rollout.collector import write_transcripts
from spiral.sft.data import play_records
from tests.launch import clean_env
from tests.train.helpers import deterministic_view, read_metrics

pytestmark = pytest.mark.slow

REPO = Path(__file__).parents[2]
SMALL = ["trainer.micro_batch_size=16", "sft.batch_size=16", "sft.eval_every=4", "logging.console=false"]


def sft_cmd(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "spiral.cli", "sft", str(REPO / "configs" / "sft_kuhn_tiny.yaml"), f"run.dir={run_dir}",
            *SMALL, *extra]


def run_sft(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(sft_cmd(run_dir, *extra), capture_output=True, text=True, timeout=600, env=clean_env())
    if proc.returncode != 0:
        pytest.fail(f"spiral sft failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def transcripts(tmp_path_factory) -> Path:
    """Sixty random-play Kuhn games in the transcript format `spiral train` writes."""
    path = tmp_path_factory.mktemp("data") / "transcripts" / "step-000001.jsonl"
    write_transcripts(play_records([make_agent("random"), make_agent("nash")], [GameSpec("kuhn_poker")], 60, seed=0),
                      path)
    return path


def test_loss_falls_on_a_fixed_set_and_the_model_loads(tmp_path: Path, transcripts: Path) -> None:
    run_dir = tmp_path / "run"
    run_sft(run_dir, f"sft.data=[{transcripts.parent}/*.jsonl]", "trainer.steps=24", "sft.eval_fraction=0.2")
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == list(range(1, 25))
    assert rows[-1]["sft/loss"] < 0.3 * rows[0]["sft/loss"]
    evals = [r["sft/eval_loss"] for r in rows if "sft/eval_loss" in r]
    assert len(evals) == 6 and evals[-1] < 0.5 * evals[0]
    model = AutoModelForCausalLM.from_pretrained(run_dir / "model")
    assert model.config.model_type == "qwen3"
    assert (run_dir / "model" / "tokenizer.json").is_file()


def test_resume_after_sigkill_reproduces_the_loss(tmp_path: Path, transcripts: Path) -> None:
    args = [f"sft.data=[{transcripts}]", "trainer.steps=6", "checkpoint.every=2"]
    reference = tmp_path / "reference"
    run_sft(reference, *args)
    interrupted = tmp_path / "interrupted"
    proc = subprocess.Popen(sft_cmd(interrupted, *args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=clean_env())
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:  # kill once step 5 is logged: step 4 is saved, 6 is not
        if (interrupted / "metrics.jsonl").exists() and any(r["step"] == 5 for r in read_metrics(interrupted)):
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    run_sft(interrupted, *args)
    want = {r["step"]: deterministic_view(r) for r in read_metrics(reference)}
    got = {r["step"]: deterministic_view(r) for r in read_metrics(interrupted)}
    assert sorted(got) == list(range(1, 7))
    for step in (5, 6):
        for key, value in want[step].items():
            assert got[step][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (step, key)


def test_games_played_on_the_fly_with_the_winners_filter(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_sft(run_dir, "sft.agents=[nash,random]", "sft.episodes=40", "sft.filter=winners", "trainer.steps=2")
    assert "model written to" in proc.stderr
    assert len(read_metrics(run_dir)) == 2


def test_bad_data_path_and_empty_selection_are_clear_errors(tmp_path: Path) -> None:
    missing = subprocess.run(sft_cmd(tmp_path / "a", f"sft.data=[{tmp_path}/nothing/*.jsonl]"),
                             capture_output=True, text=True, timeout=300, env=clean_env())
    assert missing.returncode == 2 and "no transcript file matches" in missing.stderr
    draws = tmp_path / "draws.jsonl"
    record = {"game": "kuhn_poker", "seed": 1, "returns": [0.0, 0.0], "end_reason": "turn_limit",
              "invalid_seat": None, "params": {}, "transcript": []}
    draws.write_text(json.dumps(record) + "\n")
    empty = subprocess.run(sft_cmd(tmp_path / "b", f"sft.data=[{draws}]", "sft.filter=winners", "sft.eval_fraction=0"),
                           capture_output=True, text=True, timeout=300, env=clean_env())
    assert empty.returncode == 2 and "no turn to learn from" in empty.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
