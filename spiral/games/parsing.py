"""Extracting a move from free model text: the last brace-matched `\\boxed{...}` and tolerant matching.

Pure string functions; they never raise on any input.
"""

from __future__ import annotations

import re

_BOX = "\\boxed"


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` whose braces balance, or None."""
    start = text.rfind(_BOX)
    while start != -1:
        i = start + len(_BOX)
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth, j = 0, i
            while j < len(text):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1 : j]
                j += 1
        start = text.rfind(_BOX, 0, start)
    return None


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
