"""`SpiralError`: a problem the user must act on, reported by the CLI as one line instead of a traceback."""

from __future__ import annotations


class SpiralError(Exception):
    """A refusal or failure whose message says what is wrong and what to do; the CLI prints it as one
    line and exits with `exit_code` (2: refused before starting, as for a bad config)."""

    exit_code = 2
