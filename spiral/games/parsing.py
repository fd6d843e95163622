"""Extracting a move from free model text: tolerant matching of the last `\\boxed{...}` against the legal moves.

Pure string functions; they never raise on any input.
"""

from __future__ import annotations

import re

from spiral.text import last_boxed


def normalize_move(text: str) -> str:
    """Lower-case, drop surrounding brackets/quotes/punctuation and collapse spaces."""
    text = text.strip().lower()
    text = re.sub(r"\\text\{([^{}]*)\}", r"\1", text)
    text = text.strip(" \t\n[](){}'\"`.,;:!")
    return re.sub(r"\s+", " ", text)


def match_boxed_action(text: str, legal: list[str]) -> str | None:
    """The legal action named by the last box in `text`, or None."""
    content = last_boxed(text)
    if content is None:
        return None
    wanted = normalize_move(content)
    for action in legal:
        if normalize_move(action) == wanted:
            return action
    return None
