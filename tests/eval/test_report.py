"""`spiral report`: PNG curves and a first/last/best summary from a metrics.jsonl the test writes."""

from __future__ import annotations

import json

import pytest

from spiral.cli import main
from spiral.eval.report import read_metrics, write_report


def write_metrics(run_dir, rows):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


ROWS = [
    {"step": 0, "eval/kuhn_poker/random/win_rate": 0.40, "eval/kuhn_poker/exploitability": 0.45,
     "rollout/response_length_mean": 300.0, "returns/kuhn_poker/seat0": -0.2, "returns/kuhn_poker/seat1": 0.2,
     "loss/policy": 0.5},
    {"step": 1, "rollout/response_length_mean": 250.0, "returns/kuhn_poker/seat0": -0.1,
     "returns/kuhn_poker/seat1": 0.1, "loss/policy": 0.2, "loss/clip_frac": None},
    {"step": 2, "eval/kuhn_poker/random/win_rate": 0.70, "eval/kuhn_poker/exploitability": 0.12,
     "eval/kuhn_poker/random/seat0/win_rate": 0.6, "rollout/response_length_mean": 280.0,
     "returns/kuhn_poker/seat0": 0.0, "returns/kuhn_poker/seat1": 0.0, "loss/policy": 0.3},
    {"step": 3, "eval/kuhn_poker/random/win_rate": 0.65, "eval/kuhn_poker/exploitability": 0.20, "loss/policy": 0.4},
]


def test_report_writes_plots_and_summary(tmp_path):
    run = tmp_path / "run"
    write_metrics(run, ROWS)
    out = write_report(run)
    for name in ("win_rates", "exploitability", "response_length", "returns", "loss"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert not (out / "benchmarks.png").exists()  # no benchmark metrics were logged
    summary = (out / "summary.md").read_text()
    win = next(line for line in summary.splitlines() if "`eval/kuhn_poker/random/win_rate`" in line)
    assert win == "| `eval/kuhn_poker/random/win_rate` | 0.4 (step 0) | 0.65 (step 3) | 0.7 | 2 |"
    expl = next(line for line in summary.splitlines() if "`eval/kuhn_poker/exploitability`" in line)
    assert expl.endswith("| 0.12 | 2 |")  # lower is better
    loss = next(line for line in summary.splitlines() if "`loss/policy`" in line)
    assert loss == "| `loss/policy` | 0.5 (step 0) | 0.4 (step 3) | 0.2 | 1 |"
    assert "seat0/win_rate" not in summary  # per-seat eval rows are not mixed into the win-rate plot
    assert "loss/clip_frac" not in summary  # only null values: nothing to plot


def test_report_command_and_errors(tmp_path, capsys):
    write_metrics(tmp_path / "run", ROWS[:2])
    assert main(["report", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "report" / "summary.md").is_file()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no metrics file" in capsys.readouterr().err

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.jsonl").write_text('{"step": 0, "loss/policy": 1}\n{"loss/policy": 2}\n')
    with pytest.raises(ValueError, match="metrics.jsonl:2: .*integer 'step'"):
        read_metrics(tmp_path / "bad" / "metrics.jsonl")
