"""A math grading worker: `python -m spiral.eval.grading_worker FD MODULE:FUNCTION`.

Started by `spiral.eval.grading.GradingPool` as a fresh interpreter (never a fork or a multiprocessing spawn,
which would re-import the caller's script). It warms up the check (imports), says "ready" on the connection
at file descriptor FD, then grades `(index, completion, gold)` tasks until told to stop or the pool goes away.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection


def load_check(spec: str) -> Callable[[str, str], bool]:
    """The function named `module:qualname`."""
    module_name, _, qualname = spec.partition(":")
    target = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target  # type: ignore[return-value]


def serve(conn: Connection, check: Callable[[str, str], bool]) -> None:
    """Announce readiness after a warm-up, then grade until told to stop (None) or the pool is gone."""
    try:
        check("\\boxed{1}", "1")
    except Exception:
        pass
    conn.send("ready")
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the pool's process ended
            return
        if task is None:
            return
        index, completion, gold = task
        try:
            ok = bool(check(completion, gold))
        except Exception:  # a grader error on odd input is a wrong answer, not a crash
            ok = False
        conn.send((index, ok))


def main(argv: list[str]) -> None:
    fd, spec = int(argv[0]), argv[1]
    serve(Connection(fd), load_check(spec))


if __name__ == "__main__":
    main(sys.argv[1:])
