"""What the person at the terminal sees: a live progress line on a terminal, plain lines elsewhere (CI, log
files), and third-party output (DeepSpeed op builds, transformers' loading and writing bars) hidden unless
asked for with `-v`.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import re
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

# Fixed headline metrics, in the order shown: (metrics key, label).
HEADLINE_KEYS = (
    ("rollout/return_mean", "ret"),
    ("rollout/invalid_rate", "inv"),
    ("loss/policy", "loss"),
    ("sft/loss", "loss"),
    ("sft/eval_loss", "eval_loss"),
)
# Evaluation results, shown as they come and kept on the live line until the next evaluation.
_EVAL_PATTERNS = (
    (re.compile(r"^eval/(?P<game>[^/]+)/exploitability$"), "expl"),
    (re.compile(r"^eval/(?P<game>[^/]+)/(?P<opponent>[^/]+)/win_rate$"), "win"),
)
# Environment switches read by third-party libraries when they are imported (or by their subprocesses).
_QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' "Loading weights" / "Writing model shards" bars too
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "VLLM_LOGGING_LEVEL": "WARNING",
}
_QUIET_LOGGERS = ("DeepSpeed", "torch.utils.cpp_extension", "transformers", "vllm", "accelerate", "peft")


_quiet = False  # set by the CLI; a library user sees everything, as they would without spiral


def quiet_third_party(verbose: bool) -> None:
    """Hide the libraries' progress bars, info logs and op-build messages unless `verbose`.

    Call it before the libraries are imported: most read these switches once, at import. A switch the user
    set in the environment is left as it is.
    """
    global _quiet
    _quiet = not verbose
    if verbose:
        return
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def hushed() -> Iterator[None]:
    """Drop what a third-party call prints to stdout (DeepSpeed's "op built successfully") unless verbose.

    Errors still surface: they are raised, not printed.
    """
    if not _quiet:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def format_number(value: Any) -> str:
    """A console number; None prints as none, nan and inf as such."""
    return "none" if value is None else f"{float(value):.3g}"


def format_duration(seconds: float) -> str:
    """`1h02m`, `3m05s` or `42s`."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def headline(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    """The (label, value) pairs worth a glance: mean return, invalid rate, losses, exploitability, win rates."""
    shown = [(label, metrics[key]) for key, label in HEADLINE_KEYS if key in metrics]
    games = {m.group("game") for key in metrics for pattern, _ in _EVAL_PATTERNS if (m := pattern.match(key))}
    for key in sorted(metrics):
        for pattern, label in _EVAL_PATTERNS:
            if m := pattern.match(key):
                parts = [m.group("game")] if len(games) > 1 else []
                parts += [m.group("opponent")] if "opponent" in pattern.groupindex else []
                shown.append(("/".join([label, *parts]), metrics[key]))
    return shown


class StepProgress:
    """Steps done / total, ETA, seconds per step and the headline metrics.

    On a terminal: one live line, with a permanent line printed at every evaluation. Elsewhere: one plain
    line per step. Seconds per step is the wall-clock mean of the last steps logged by this process, so a
    resumed run's ETA counts only the steps still to do.
    """

    def __init__(self, console: Console, total: int | None, label: str = "step", unit: str = "step",
                 window: int = 20):
        self.console = console
        self.total = total
        self.label = label
        self.unit = unit
        self._intervals: deque[float] = deque(maxlen=window)
        self._last_time: float | None = None
        self._last_step: int | None = None
        self._sticky: dict[str, Any] = {}  # the last evaluation's results, kept on the live line
        self._live: Progress | None = None
        self._task: Any = None

    @property
    def live(self) -> bool:
        return self.console.is_terminal

    def update(self, step: int, metrics: dict[str, Any]) -> None:
        now = time.monotonic()
        if self._last_time is not None and self._last_step is not None and step > self._last_step:
            self._intervals.append((now - self._last_time) / (step - self._last_step))
        self._last_time, self._last_step = now, step
        evaluated = any(pattern.match(key) for key in metrics for pattern, _ in _EVAL_PATTERNS)
        if evaluated:
            self._sticky = {k: v for k, v in metrics.items() if any(p.match(k) for p, _ in _EVAL_PATTERNS)}
        if not self.live:
            self.console.print(self.line(step, metrics), highlight=False)
            return
        if evaluated:
            self.console.print(self.line(step, metrics), highlight=False)
        self._render(step, {**self._sticky, **metrics})

    def seconds_per_step(self) -> float | None:
        return sum(self._intervals) / len(self._intervals) if self._intervals else None

    def eta(self, step: int) -> float | None:
        per_step = self.seconds_per_step()
        if per_step is None or not self.total:
            return None
        return per_step * max(0, self.total - step)

    def line(self, step: int, metrics: dict[str, Any]) -> str:
        """The plain line: `step 12/150 ret=0.1 inv=0 loss=-0.02 expl=0.3 s/step=0.7 eta=1m37s`."""
        of = f"/{self.total}" if self.total else ""
        parts = [f"{label}={format_number(value)}" for label, value in headline(metrics)]
        parts += self._timing(step)
        return f"[bold]{self.label} {step}{of}[/bold] " + " ".join(parts)

    def _timing(self, step: int) -> list[str]:
        per_step, eta = self.seconds_per_step(), self.eta(step)
        return ([f"s/{self.unit}={per_step:.3g}"] if per_step is not None else []) + \
            ([f"eta={format_duration(eta)}"] if eta is not None else [])

    def _render(self, step: int, metrics: dict[str, Any]) -> None:
        fields = " ".join([f"{label}={format_number(value)}" for label, value in headline(metrics)]
                          + self._timing(step))
        if self._live is None:
            self._live = Progress(TextColumn(f"[bold]{self.label}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                                  TextColumn("{task.fields[shown]}"), console=self.console, auto_refresh=False)
            self._live.start()
            atexit.register(self.close)  # a run that dies still gets its cursor back
            self._task = self._live.add_task(self.label, total=self.total or None, completed=step, shown=fields)
        else:
            self._live.update(self._task, completed=step, shown=fields)
        self._live.refresh()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
