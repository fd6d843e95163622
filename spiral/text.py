"""Answers in model text: the last brace-matched `\\boxed{...}`, read by the games (moves) and math grading alike.

Pure string functions; they never raise on any input.
"""

from __future__ import annotations

import re


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` whose braces balance, or None."""
    span = last_boxed_span(text)
    return None if span is None else text[span[0] : span[1]]


def last_boxed_span(text: str) -> tuple[int, int] | None:
    """(start, end) character offsets of the content of the last balanced `\\boxed{...}`, or None.

    One pass with a brace stack, so degenerate completions (thousands of unclosed boxes) stay linear.
    """
    box_opens = set()  # positions of "{" that open a \boxed (spaces allowed between)
    for m in re.finditer(r"\\boxed *\{", text):
        box_opens.add(m.end() - 1)
    if not box_opens:
        return None
    best: tuple[int, int] | None = None
    stack: list[int] = []
    for j, ch in enumerate(text):
        if ch == "{":
            stack.append(j)
        elif ch == "}" and stack:
            i = stack.pop()
            if i in box_opens and (best is None or i > best[0]):
                best = (i, j)
    return None if best is None else (best[0] + 1, best[1])
