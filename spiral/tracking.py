"""Where step metrics go: `metrics.jsonl` in the run directory, the console's progress display, and optionally W&B.

Only rank 0 writes; W&B failures (no network, no key) fall back to offline mode and never stop a run.
Non-finite values (a skipped step's loss) are written as JSON null and shown as nan/inf on the console.
"""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from spiral.console import StepProgress
from spiral.durable import write_atomic


class MetricsLogger:
    """Appends one JSON object per step to `metrics.jsonl` and mirrors it to the console and W&B."""

    def __init__(self, run_dir: str | Path, *, enabled: bool, console: bool = True,
                 wandb_project: str | None = None, run_name: str = "", config: dict[str, Any] | None = None):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.console = Console(stderr=True) if (console and enabled) else None
        self._progress: StepProgress | None = None
        self._wandb = _start_wandb(wandb_project, run_name, run_dir, config) if (enabled and wandb_project) else None

    def log(self, step: int, metrics: dict[str, float], total_steps: int | None = None) -> None:
        if not self.enabled:
            return
        row = {"step": step, **{k: _plain(v) for k, v in sorted(metrics.items())}}
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        if self.console is not None:
            if self._progress is None:
                self._progress = StepProgress(self.console, total_steps)
            self._progress.update(step, metrics)
        if self._wandb is not None:
            try:
                self._wandb.log(row, step=step)
            except Exception as err:  # a logging sink must never end a training run
                if self.console is not None:
                    self.console.print(f"wandb log failed, continuing: {err}")
                self._wandb = None

    def note(self, text: str) -> None:
        """A line for the person watching (console only; nothing is recorded)."""
        if self.console is not None:
            self.console.print(text, highlight=False)

    def truncate_after(self, step: int) -> None:
        """Keep only the rows of steps up to `step`, the checkpoint a run resumes from: it is about to
        repeat the later ones. A fresh start (`step` 0) keeps none, as it logs step 0 again. A line that is
        not a whole JSON row (cut short by a kill or a full disk) is dropped. Replaced atomically."""
        if not (self.enabled and self.path.exists()):
            return
        kept, unreadable = [], 0
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row_step = json.loads(line)["step"]
            except (ValueError, TypeError, KeyError):
                unreadable += bool(line.strip())
                continue
            if step > 0 and isinstance(row_step, int) and row_step <= step:
                kept.append(line + "\n")
        if unreadable and self.console is not None:
            self.console.print(f"{self.path}: dropped {unreadable} unreadable line(s), e.g. one cut short by a crash")
        write_atomic(self.path, "".join(kept))

    def close(self) -> None:
        if self._progress is not None:
            self._progress.close()
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
    explicit = os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE")
    mode: Literal["offline"] | None = None if explicit else "offline"
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
