"""Math and multiple-choice grading: last-box extraction, math-verify equivalence, e-notation, hard timeouts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spiral.eval.benchmarks import BENCHMARKS, MULTIPLE_CHOICE, load_benchmark
from spiral.eval.grading import (
    GradingPool,
    choice_correct,
    extract_choice,
    grade_many,
    is_correct,
    normalize_e_notation,
)

SHARED_BENCHMARKS = (Path(__file__).parents[2] / "../shared/benchmarks").resolve()


def test_last_box_wins_over_earlier_boxes():
    completion = "First try: \\boxed{3}. Hmm, I made an arithmetic slip, so the answer is \\boxed{4}."
    assert is_correct(completion, "4")
    assert not is_correct(completion, "3")


def test_self_corrected_answer_is_not_merged_into_a_set():
    completion = "So $x = \\boxed{5}$. Wait, that's wrong: recomputing gives $x = \\boxed{6}$."
    assert grade_many([(completion, "6"), (completion, "5"), (completion, "\\{5, 6\\}")]) == [True, False, False]


def test_open_and_closed_interval_ends_differ():
    assert not is_correct("\\boxed{(-\\infty,2)}", "(-\\infty,2]")
    assert not is_correct("\\boxed{(-\\infty,2]}", "(-\\infty,2)")
    assert is_correct("\\boxed{(-\\infty, 2]}", "(-\\infty,2]")


def test_e_notation_means_powers_of_ten_on_both_sides():
    assert grade_many([
        ("\\boxed{4.5 \\times 10^{33}}", "4.5e33"),
        ("\\boxed{4.5e33}", "4.5\\times 10^{33}"),
        ("\\boxed{2.7778e-6}", "2.7778 \\times 10^{-6}"),
        ("\\boxed{4.6e33}", "4.5e33"),
        ("\\boxed{4.5 \\times 10^{32}}", "4.5e33"),
    ]) == [True, True, True, False, False]


def test_normalize_e_notation_leaves_other_text_alone():
    assert normalize_e_notation("3e-5 and 4.5E33") == "3\\times 10^{-5} and 4.5\\times 10^{33}"
    for text in ("e^{2}", "2e", "x2e3", "\\sec 2", "1.5"):
        assert normalize_e_notation(text) == text


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        ("\\boxed{\\frac{1}{2}}", "0.5", True),
        ("\\boxed{\\dfrac{3}{4}}", "3/4", True),
        ("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}", True),
        ("\\boxed{27}", "27", True),
        ("\\boxed{1,000}", "1000", True),
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "(3,\\frac{\\pi}{2})", True),
        ("\\boxed{\\frac{1}{3}}", "0.5", False),
        ("\\boxed{28}", "27", False),
        ("The answer is 27.", "27", False),  # no box: a format failure counts as wrong
        ("\\boxed{}", "27", False),
        ("\\boxed{27", "27", False),  # unbalanced braces
    ],
)
def test_equivalences(completion, gold, expected):
    assert is_correct(completion, gold) is expected


def test_pathological_expression_times_out_as_wrong_without_hanging():
    start = time.monotonic()
    # sympy would try to evaluate this power for minutes; the worker is killed and the answer marked wrong.
    result = grade_many([("\\boxed{9^{9^{9^{9}}}}", "7"), ("\\boxed{7}", "7")], timeout=1.0)
    assert result == [False, True]
    assert time.monotonic() - start < 60


def sleepy_check(completion: str, gold: str) -> bool:
    """A grader that hangs on gold 'slow' (module level so spawned workers can import it)."""
    if gold == "slow":
        time.sleep(60)
    return completion == gold


def test_pool_counts_a_slow_grader_as_wrong_and_keeps_going():
    with GradingPool(workers=1, check=sleepy_check) as pool:
        start = time.monotonic()
        assert pool.grade([("slow", "slow"), ("a", "a"), ("a", "b")], timeout=0.5) == [False, True, False]
        assert time.monotonic() - start < 30
        assert pool.grade([("x", "x")], timeout=5) == [True]


def test_pool_rejects_bad_settings():
    with pytest.raises(ValueError, match="worker"):
        GradingPool(workers=0)
    with pytest.raises(ValueError, match="timeout"):
        grade_many([("\\boxed{1}", "1")], timeout=0)


@pytest.mark.parametrize(
    ("completion", "letter"),
    [
        ("... so the answer is \\boxed{B}", "B"),
        ("\\boxed{(C)}", "C"),
        ("\\boxed{\\text{D}}", "D"),
        ("\\boxed{A) 42 joules}", "A"),
        ("I first thought \\boxed{A} but it is \\boxed{E}", "E"),
        ("Therefore, the answer is (J).", "J"),
        ("The answer is B, not C. Final answer: C", "C"),
        ("\\boxed{42}\nThe answer is (D)", "D"),
        ("the answer is a number we cannot know", None),
        ("no idea", None),
    ],
)
def test_extract_choice(completion, letter):
    assert extract_choice(completion) == letter


def test_choice_correct_compares_letters():
    assert choice_correct("so \\boxed{B}", "B")
    assert choice_correct("so \\boxed{B}", " b ")
    assert not choice_correct("so \\boxed{B}", "C")
    assert not choice_correct("no answer", "C")


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_BENCHMARKS.is_dir(), reason="shared benchmark files not present")
def test_every_gold_answer_grades_correct_against_itself():
    free_form = [name for name in BENCHMARKS if name not in MULTIPLE_CHOICE
                 and (SHARED_BENCHMARKS / f"{name}.jsonl").is_file()]
    assert free_form, "no free-form benchmark files found"
    failures = {}
    for name in free_form:
        problems = load_benchmark(name, SHARED_BENCHMARKS)
        results = grade_many([(f"The answer is $\\boxed{{{p.gold}}}$.", p.gold) for p in problems], timeout=10)
        failures[name] = [p.gold for p, ok in zip(problems, results) if not ok]
        print(f"{name}: {len(failures[name])} of {len(problems)} gold answers not graded correct: {failures[name][:5]}")
        assert len(failures[name]) <= 0.01 * len(problems), (name, failures[name][:10])


_UNGUARDED = """
import time
from spiral.eval.grading import grade_many, is_correct
print(is_correct("so the answer is \\\\boxed{\\\\frac{1}{2}}", "0.5"))
start = time.monotonic()
print(grade_many([("\\\\boxed{9^{9^{9^{9}}}}", "7"), ("\\\\boxed{7}", "7")], timeout=1.0))
print(time.monotonic() - start < 60)
"""


def _run_unguarded(tmp_path: Path, *, from_stdin: bool) -> list[str]:
    """Grading called at the top level of a script with no `__main__` guard, as a file or piped to `python -`."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    if from_stdin:
        proc = subprocess.run([sys.executable, "-"], input=_UNGUARDED, capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=600)
    else:
        script = tmp_path / "grade.py"
        script.write_text(_UNGUARDED)
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()


@pytest.mark.parametrize("from_stdin", [False, True], ids=["script", "stdin"])
def test_grading_works_from_an_unguarded_script_and_keeps_its_deadline(tmp_path, from_stdin):
    assert _run_unguarded(tmp_path, from_stdin=from_stdin) == ["True", "[False,", "True]", "True"]


def test_a_check_that_workers_could_not_import_is_refused():
    with pytest.raises(ValueError, match="top level of an importable module"):
        GradingPool(workers=1, check=lambda completion, gold: True)
