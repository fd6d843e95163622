"""Extracting a move from free model text: the last brace-matched `\\boxed{...}` and tolerant matching.

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
