"""Where step metrics go: `metrics.jsonl` in the run directory, a console line, and optionally W&B.

Only rank 0 writes; W&B failures (no network, no key) fall back to offline mode and never stop a run.
"""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path
from typing import Any

from rich.console import Console

_CONSOLE_KEYS = (
    ("rollout/return_mean", "ret"),
    ("rollout/invalid_rate", "inv"),
    ("loss/policy", "loss"),
    ("sft/loss", "loss"),
    ("sft/eval_loss", "eval_loss"),
    ("eval/kuhn_poker/exploitability", "expl"),
    ("time/step", "s/step"),
)


class MetricsLogger:
    """Appends one JSON object per step to `metrics.jsonl` and mirrors it to the console and W&B."""

    def __init__(self, run_dir: str | Path, *, enabled: bool, console: bool = True,
                 wandb_project: str | None = None, run_name: str = "", config: dict[str, Any] | None = None):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.console = Console(stderr=True) if (console and enabled) else None
        self._wandb = _start_wandb(wandb_project, run_name, run_dir, config) if (enabled and wandb_project) else None

    def log(self, step: int, metrics: dict[str, float], total_steps: int | None = None) -> None:
        if not self.enabled:
            return
        row = {"step": step, **{k: _plain(v) for k, v in sorted(metrics.items())}}
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        if self.console is not None:
            shown = " ".join(f"{label}={row[key]:.3g}" for key, label in _CONSOLE_KEYS if key in row)
            of = f"/{total_steps}" if total_steps else ""
            self.console.print(f"[bold]step {step}{of}[/bold] {shown}", highlight=False)
        if self._wandb is not None:
            try:
                self._wandb.log(row, step=step)
            except Exception as err:  # a logging sink must never end a training run
                self.console and self.console.print(f"wandb log failed, continuing: {err}")
                self._wandb = None

    def note(self, text: str) -> None:
        """A line for the person watching (console only; nothing is recorded)."""
        if self.console is not None:
            self.console.print(text, highlight=False)

    def truncate_after(self, step: int) -> None:
        """Drop rows beyond `step` (a resumed run rewrites the steps it is about to repeat)."""
        if not (self.enabled and self.path.exists()):
            return
        rows = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        self.path.write_text("".join(r + "\n" for r in rows))

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()


def _plain(value: Any) -> Any:
    value = float(value) if hasattr(value, "__float__") and not isinstance(value, (int, bool)) else value
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _start_wandb(project: str, name: str, run_dir: str | Path, config: dict[str, Any] | None):
    try:
        import wandb
    except ImportError:
        Console(stderr=True).print("logging.wandb is on but wandb is not installed (pip install 'spiral[wandb]'); skipping")
        return None
    # No key and no explicit mode: nothing could be uploaded, so write an offline run (`wandb sync` later).
    mode = None if (os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE")) else "offline"
    init = functools.partial(wandb.init, project=project, name=name or Path(run_dir).name, dir=str(run_dir),
                             config=config)
    try:
        return init(mode=mode)
    except Exception as err:
        Console(stderr=True).print(f"wandb init failed ({err}); logging offline")
    try:
        return init(mode="offline")
    except Exception as err:  # a logging sink must never end a training run
        Console(stderr=True).print(f"wandb offline init failed too ({err}); continuing without wandb")
        return None
