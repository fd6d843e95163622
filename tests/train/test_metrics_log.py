"""metrics.jsonl and the console line: non-finite values, resume truncation, crash-safe rewrites."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from spiral.tracking import MetricsLogger


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _write_rows(run_dir: Path, steps: list[int], tail: str = "") -> None:
    lines = "".join(json.dumps({"step": s, "loss/policy": 0.1 * s}) + "\n" for s in steps)
    (run_dir / "metrics.jsonl").write_text(lines + tail)


def test_non_finite_values_are_null_in_the_file_and_nan_on_the_console(tmp_path, capsys) -> None:
    logger = MetricsLogger(tmp_path, enabled=True, console=True)
    logger.log(1, {"loss/policy": float("nan"), "rollout/return_mean": float("inf"), "time/step": 1.5}, 3)
    row = _rows(tmp_path)[0]
    assert row["loss/policy"] is None and row["rollout/return_mean"] is None and row["time/step"] == 1.5
    err = capsys.readouterr().err
    assert "step 1/3" in err and "loss=nan" in err and "ret=inf" in err


def test_resume_keeps_rows_up_to_the_checkpoint_and_drops_a_line_cut_short(tmp_path) -> None:
    _write_rows(tmp_path, [0, 1, 2, 3], tail='{"step": 4, "loss/pol')  # what a full disk leaves
    MetricsLogger(tmp_path, enabled=True, console=False).truncate_after(2)
    assert [r["step"] for r in _rows(tmp_path)] == [0, 1, 2]


def test_a_fresh_start_after_a_crash_logs_step_zero_once(tmp_path) -> None:
    _write_rows(tmp_path, [0, 1])  # the first attempt died before its first checkpoint
    logger = MetricsLogger(tmp_path, enabled=True, console=False)
    logger.truncate_after(0)
    logger.log(0, {"eval/kuhn_poker/exploitability": 0.4})
    assert [r["step"] for r in _rows(tmp_path)] == [0]


def test_the_resume_rewrite_never_leaves_a_half_written_file(tmp_path, monkeypatch) -> None:
    _write_rows(tmp_path, [0, 1, 2, 3])
    before = (tmp_path / "metrics.jsonl").read_text()

    def crash(*args, **kwargs):
        raise OSError("killed mid-rewrite")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        MetricsLogger(tmp_path, enabled=True, console=False).truncate_after(1)
    assert (tmp_path / "metrics.jsonl").read_text() == before
