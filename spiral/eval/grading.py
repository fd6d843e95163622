"""Grading of benchmark answers: math by math-verify (last box only, under a hard timeout), letters for choices.

Math answers are checked in worker processes (`python -m spiral.eval.grading_worker`) that are killed when an
answer overruns its deadline, so a pathological expression counts as wrong and never hangs an evaluation.
"""

from __future__ import annotations

import atexit
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait

from spiral.text import last_boxed

DEFAULT_TIMEOUT = 5.0
"""Seconds one answer may take to grade before it counts as wrong."""

# `4.5e33` is read by math-verify as 4.5·e·33 (Euler's number); rewrite it as 4.5\times 10^{33}.
_E_NOTATION = re.compile(r"(?<![\w.\\])(\d+(?:\.\d*)?|\.\d+)\s*[eE]\s*([+-]?\d+)(?![\w.])")


def normalize_e_notation(text: str) -> str:
    """Rewrite decimal e-notation (`3e-5`, `4.5E33`) as LaTeX powers of ten."""
    return _E_NOTATION.sub(lambda m: f"{m.group(1)}\\times 10^{{{int(m.group(2))}}}", text)


def _parse_boxed(content: str) -> list:
    from math_verify import parse

    return parse(f"\\boxed{{{normalize_e_notation(content)}}}")


def check_answer(completion: str, gold: str) -> bool:
    """Uncapped check (no hard timeout): the completion's last `\\boxed{}` is equivalent to `gold`.

    Runs inside grading workers; call `is_correct` or `grade_many` instead, which bound its time.
    """
    from math_verify import verify

    answer = last_boxed(completion)
    if answer is None or not answer.strip():
        return False
    # Only the last box is parsed: math-verify would merge several boxes of a self-corrected answer into a set.
    gold_parsed, answer_parsed = _parse_boxed(gold), _parse_boxed(answer)
    if not gold_parsed or not answer_parsed:
        return False
    return bool(verify(gold_parsed, answer_parsed))


def check_spec(check: Callable[[str, str], bool]) -> str:
    """`module:function`, the name a grading worker imports `check` by; refuses what it could not import."""
    module, name = getattr(check, "__module__", None), getattr(check, "__qualname__", "")
    if not module or module == "__main__" or not name or "<" in name:
        raise ValueError(
            f"a grading check must be a function defined at the top level of an importable module (workers import "
            f"it by name and never import the caller's script), got {check!r}"
        )
    return f"{module}:{name}"


class _Slot:
    """One worker process and the task it is busy with.

    The worker is `python -m spiral.eval.grading_worker`, a fresh interpreter that imports only spiral and the
    check function: unlike a multiprocessing child it never re-imports the caller's `__main__`, so grading works
    from an unguarded script, `python -`, or a notebook. It talks over one end of a socket pair.
    """

    def __init__(self, check: str):
        ours, theirs = socket.socketpair()
        # The worker finds spiral and the check's module where this process did.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spiral.eval.grading_worker", str(theirs.fileno()), check],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        theirs.close()
        self.conn = Connection(ours.detach())
        self.ready = False
        self.task: int | None = None
        self.deadline = 0.0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.conn.close()


_MAX_STARTUP_FAILURES = 3
_STARTUP_HELP = (
    "math grading workers (python -m spiral.eval.grading_worker) keep exiting on start-up; their error is printed "
    "above. Is math-verify installed (pip install 'spiral[eval]')?"
)


class GradingPool:
    """Processes that run `check(completion, gold)` with a hard per-answer deadline.

    An answer that overruns its deadline (or crashes its worker) counts as wrong; the worker is killed and
    replaced. The clock of an answer starts when a warmed-up worker receives it.
    """

    def __init__(self, workers: int | None = None, check: Callable[[str, str], bool] = check_answer):
        if workers is None:
            workers = max(1, min(4, os.cpu_count() or 1))
        if workers < 1:
            raise ValueError(f"GradingPool needs at least one worker, got {workers}")
        # Fresh interpreters, not forks: the parent may hold inference-engine threads that must not be forked.
        self._check = check_spec(check)
        self._slots = [_Slot(self._check) for _ in range(workers)]
        self._lock = threading.Lock()
        self._startup_failures = 0

    def grade(self, pairs: Sequence[tuple[str, str]], timeout: float = DEFAULT_TIMEOUT) -> list[bool]:
        """Grade (completion, gold) pairs; each gets at most `timeout` seconds once started."""
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        with self._lock:
            return self._grade(list(pairs), timeout)

    def _grade(self, pairs: list[tuple[str, str]], timeout: float) -> list[bool]:
        results: list[bool] = [False] * len(pairs)
        pending = list(range(len(pairs) - 1, -1, -1))  # popped from the end, so in order
        busy = 0
        while pending or busy:
            for slot in self._slots:
                if slot.ready and slot.task is None and pending:
                    index = pending.pop()
                    slot.conn.send((index, *pairs[index]))
                    slot.task, slot.deadline = index, time.monotonic() + timeout
                    busy += 1
            now = time.monotonic()
            deadlines = [s.deadline for s in self._slots if s.task is not None]
            wait_for = max(0.0, min(deadlines) - now) if deadlines else None
            for ready in wait([s.conn for s in self._slots], timeout=wait_for):
                slot = next(s for s in self._slots if s.conn is ready)
                try:
                    message = slot.conn.recv()
                except (EOFError, OSError):  # the worker died (e.g. out of memory): its answer is wrong
                    if slot.task is not None:
                        busy -= 1
                    elif not slot.ready:
                        self._startup_failures += 1
                        if self._startup_failures >= _MAX_STARTUP_FAILURES:
                            raise RuntimeError(_STARTUP_HELP) from None
                    self._replace(slot)
                    continue
                if message == "ready":
                    slot.ready = True
                    self._startup_failures = 0
                else:
                    index, ok = message
                    results[index] = ok
                    slot.task = None
                    busy -= 1
            now = time.monotonic()
            for slot in self._slots:
                if slot.task is not None and now >= slot.deadline:
                    busy -= 1  # results[task] stays False: a timeout is a wrong answer
                    self._replace(slot)
        return results

    def _replace(self, slot: _Slot) -> None:
        slot.kill()
        self._slots[self._slots.index(slot)] = _Slot(self._check)

    def close(self) -> None:
        for slot in self._slots:
            try:
                slot.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for slot in self._slots:
            try:
                slot.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                slot.proc.kill()
                slot.proc.wait()
            slot.conn.close()
        self._slots = []

    def __enter__(self) -> GradingPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: GradingPool | None = None
_shared_lock = threading.Lock()


def _shared_pool() -> GradingPool:
    """The process-wide pool behind `is_correct` and `grade_many`, started on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = GradingPool()
            atexit.register(_shared.close)
        return _shared


def grade_many(pairs: Sequence[tuple[str, str]], timeout: float = DEFAULT_TIMEOUT) -> list[bool]:
    """Grade many (completion, gold) math answers in parallel; a timeout counts as wrong."""
    if not pairs:
        return []
    return _shared_pool().grade(pairs, timeout)


def is_correct(completion: str, gold: str) -> bool:
    """Whether the last `\\boxed{}` of `completion` is mathematically equivalent to `gold`."""
    return grade_many([(completion, gold)])[0]


# Only the word "answer" ignores case: the letter must be a capital, or "the answer is a number" would say A.
_ANSWER_IS = re.compile(r"(?i:answer)\s*(?:(?i:is)|:)\s*:?\s*\**\s*\(?([A-Z])\)?(?![A-Za-z])")
_LETTER_IN_BOX = re.compile(r"^\(?([A-Z])(?:\)|\.|:|\s|$)")


def extract_choice(completion: str) -> str | None:
    """The chosen letter: from the last `\\boxed{}` if it holds one, else the last "answer is (X)"."""
    boxed = last_boxed(completion)
    if boxed is not None:
        content = re.sub(r"\\text(?:bf|rm|tt)?\{([^{}]*)\}", r"\1", boxed).strip()
        match = _LETTER_IN_BOX.match(content)
        if match:
            return match.group(1)
    matches = _ANSWER_IS.findall(completion)
    return matches[-1] if matches else None


def choice_correct(completion: str, gold: str) -> bool:
    """Whether the letter chosen in `completion` is the gold letter."""
    return extract_choice(completion) == gold.strip().upper()
