"""Plots and a markdown summary of a run from its `metrics.jsonl`: win rates, exploitability, lengths, returns, loss.

Reads only the metrics file and writes only under `<run_dir>/report/`; never touches checkpoints.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPORT_DIR = "report"


@dataclass(frozen=True)
class PlotGroup:
    """Metrics drawn together in one figure, and which direction is better (None: neither)."""

    name: str
    title: str
    pattern: re.Pattern[str]
    better: str | None


GROUPS = (
    PlotGroup("win_rates", "Win rate against each opponent", re.compile(r"^eval/[^/]+/[^/]+/win_rate$"), "max"),
    PlotGroup("exploitability", "Kuhn Poker exploitability", re.compile(r"^eval/[^/]+/exploitability$"), "min"),
    PlotGroup("invalid", "Invalid-move rate (training turns; exploitability read-out)",
              re.compile(r"^(rollout/invalid_rate|eval/[^/]+/exploitability_invalid)$"), "min"),
    PlotGroup("benchmarks", "Benchmark accuracy", re.compile(r"^eval/bench/[^/]+/accuracy$"), "max"),
    PlotGroup("response_length", "Response length (tokens)", re.compile(r"^rollout/response_len"), None),
    PlotGroup("returns", "Mean return by game and seat", re.compile(r"^returns/[^/]+/seat\d+$"), None),
    PlotGroup("loss", "Loss", re.compile(r"^(loss/|sft/(eval_)?loss$)"), "min"),
)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a `metrics.jsonl`, each a dict with an integer `step`; bad lines are reported by number."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no metrics file {path}")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise ValueError(f"{path}:{number}: each line must be a JSON object with an integer 'step'")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path} holds no metrics")
    return rows


def series(rows: list[dict[str, Any]]) -> dict[str, tuple[list[int], list[float]]]:
    """Each numeric metric as (steps, values), skipping steps where it is missing or not finite."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    for row in sorted(rows, key=lambda r: r["step"]):
        for key, value in row.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not math.isfinite(value):
                continue
            steps, values = out.setdefault(key, ([], []))
            steps.append(row["step"])
            values.append(float(value))
    return out


def _plot(group: PlotGroup, data: dict[str, tuple[list[int], list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display is needed or wanted
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key in sorted(data):
        steps, values = data[key]
        ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=key)
    ax.set_title(group.title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _summary(plotted: list[tuple[PlotGroup, dict[str, tuple[list[int], list[float]]]]], source: Path) -> str:
    lines = [f"# Run report\n\nFrom `{source}`.\n"]
    for group, data in plotted:
        lines += [f"## {group.title}\n", f"![{group.name}]({group.name}.png)\n",
                  "| metric | first | last | best | best step |", "|---|---|---|---|---|"]
        for key in sorted(data):
            steps, values = data[key]
            if group.better is None:
                best, best_step = "-", "-"
            else:
                pick = max if group.better == "max" else min
                i = pick(range(len(values)), key=values.__getitem__)
                best, best_step = f"{values[i]:.4g}", str(steps[i])
            lines.append(f"| `{key}` | {values[0]:.4g} (step {steps[0]}) | {values[-1]:.4g} (step {steps[-1]}) "
                         f"| {best} | {best_step} |")
        lines.append("")
    if not plotted:
        lines.append("No metrics of the plotted kinds (eval/…/win_rate, exploitability, rollout/response_len…, "
                     "returns/…, loss/…) were found.\n")
    return "\n".join(lines)


def write_report(run_dir: str | Path) -> Path:
    """Write one PNG per metric group with data and `summary.md` into `<run_dir>/report/`; returns that folder."""
    run_dir = Path(run_dir)
    source = run_dir / "metrics.jsonl"
    all_series = series(read_metrics(source))
    out = run_dir / REPORT_DIR
    out.mkdir(exist_ok=True)
    plotted = []
    for group in GROUPS:
        data = {k: v for k, v in all_series.items() if group.pattern.search(k)}
        if data:
            _plot(group, data, out / f"{group.name}.png")
            plotted.append((group, data))
    (out / "summary.md").write_text(_summary(plotted, source), encoding="utf-8")
    return out
