"""Benchmark metrics as pure functions of per-sample results: avg@k, pass@k, maj@k, rates and errors.

Inputs are plain lists (one inner list per problem, one entry per sample); nothing here grades or samples.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence


def avg_at_k(correct: Sequence[Sequence[bool]]) -> float:
    """Mean over problems of the fraction of correct samples: the pass@1 estimate from k samples."""
    _check_nonempty(correct)
    return sum(sum(c) / len(c) for c in correct) / len(correct)


def pass_at_k_one(n: int, c: int, k: int) -> float:
    """Unbiased probability that at least one of k samples (of n drawn, c correct) is correct (Chen et al. 2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    # 1 - C(n-c, k) / C(n, k), as a product so large n does not overflow.
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_at_k(correct: Sequence[Sequence[bool]], k: int) -> float:
    """Mean unbiased pass@k over problems; every problem needs at least k samples."""
    _check_nonempty(correct)
    return sum(pass_at_k_one(len(c), sum(c), k) for c in correct) / len(correct)


_SPACES = re.compile(r"\s+")
_NOISE = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\ |\$")


def normalize_answer(answer: str) -> str:
    """A canonical string for voting: LaTeX spacing, sizing and `\\text{}` wrappers removed."""
    text = _NOISE.sub("", answer)
    text = re.sub(r"\\(?:text|mathrm|textbf)\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"\\[dt]frac", r"\\frac", text)
    return _SPACES.sub("", text).rstrip(".").lower()


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool]) -> bool:
    """Whether the most common answer (by normalised string; ties to the earliest) is correct.

    Samples without an answer do not vote; with no answers at all the vote is wrong.
    """
    if len(answers) != len(correct):
        raise ValueError(f"{len(answers)} answers but {len(correct)} correctness flags")
    keys = [normalize_answer(a) if a is not None else None for a in answers]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return False
    top = max(counts.values())
    winner = next(k for k in keys if k is not None and counts[k] == top)
    return correct[keys.index(winner)]


def maj_at_k(answers: Sequence[Sequence[str | None]], correct: Sequence[Sequence[bool]]) -> float:
    """Fraction of problems whose majority-vote answer is correct."""
    _check_nonempty(correct)
    return sum(majority_correct(a, c) for a, c in zip(answers, correct, strict=True)) / len(correct)


def standard_error(scores: Sequence[float]) -> float:
    """Standard error of the mean of per-problem scores (sample standard deviation / sqrt(n))."""
    n = len(scores)
    if n < 2:
        return 0.0
    mean = sum(scores) / n
    return math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1) / n)


def rate(flags: Sequence[bool]) -> float:
    """Fraction of true flags (format failures, truncations); 0 for no samples."""
    return sum(flags) / len(flags) if flags else 0.0


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; 0 for no values (e.g. mean tokens of an empty run)."""
    return sum(values) / len(values) if values else 0.0


def _check_nonempty(correct: Sequence[Sequence[bool]]) -> None:
    if not correct or any(len(c) == 0 for c in correct):
        raise ValueError("metrics need at least one problem and at least one sample per problem")
