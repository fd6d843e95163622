"""Benchmark metrics on hand-made numbers: avg@k, unbiased pass@k, majority vote, standard error, rates."""

from __future__ import annotations

import math

import pytest

from spiral.eval.metrics import (
    avg_at_k,
    maj_at_k,
    majority_correct,
    mean,
    normalize_answer,
    pass_at_k,
    pass_at_k_one,
    rate,
    standard_error,
)


def test_avg_at_k_is_mean_of_per_problem_accuracy():
    assert avg_at_k([[True, False, False, False], [True, True, True, True]]) == pytest.approx((0.25 + 1.0) / 2)


def test_pass_at_k_matches_the_combinatorial_formula():
    # n=5 samples, c=2 correct, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10.
    assert pass_at_k_one(5, 2, 2) == pytest.approx(0.7)
    for n, c, k in [(10, 3, 1), (10, 3, 4), (20, 1, 7), (16, 0, 8), (100, 13, 32)]:
        assert pass_at_k_one(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))
    assert pass_at_k_one(4, 3, 2) == 1.0  # fewer than k wrong samples: any k contain a correct one
    assert pass_at_k_one(4, 0, 4) == 0.0


def test_pass_at_1_equals_avg():
    correct = [[True, False, True], [False, False, False], [True, True, False]]
    assert pass_at_k(correct, 1) == pytest.approx(avg_at_k(correct))
    assert pass_at_k(correct, 2) == pytest.approx((1.0 + 0.0 + 1.0) / 3)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k_one(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k([[True, False]], 3)
    with pytest.raises(ValueError):
        avg_at_k([])


def test_majority_vote_groups_equivalent_strings():
    answers = ["\\frac{1}{2}", "\\dfrac{1}{2}", "0.5", " \\frac{1}{2} ", "3"]
    # "1/2" in three spellings wins; its samples were graded correct.
    assert majority_correct(answers, [True, True, True, True, False])
    # The majority is wrong even though one sample is right.
    assert not majority_correct(["3", "3", "4"], [False, False, True])


def test_majority_vote_ignores_missing_answers_and_breaks_ties_by_first_seen():
    assert majority_correct([None, None, None, "7"], [False, False, False, True])
    assert not majority_correct([None, None], [False, False])
    assert majority_correct(["7", "8"], [True, False])
    assert not majority_correct(["8", "7"], [False, True])


def test_maj_at_k_averages_problems():
    answers = [["1", "1", "2"], ["5", "6", "6"]]
    correct = [[True, True, False], [True, False, False]]
    assert maj_at_k(answers, correct) == pytest.approx(0.5)


def test_normalize_answer():
    assert normalize_answer("\\left( 3, \\frac{\\pi}{2} \\right)") == normalize_answer("(3,\\frac{\\pi}{2})")
    assert normalize_answer("\\text{Yes}.") == "yes"
    assert normalize_answer("12") != normalize_answer("21")


def test_standard_error_rate_and_mean():
    assert standard_error([1.0, 0.0, 1.0, 0.0]) == pytest.approx(math.sqrt((4 * 0.25) / 3 / 4))
    assert standard_error([0.3]) == 0.0
    assert rate([True, False, False, False]) == 0.25
    assert rate([]) == 0.0
    assert mean([10, 20, 60]) == 30
    assert mean([]) == 0.0
