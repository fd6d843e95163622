"""Benchmark loaders on small JSONL files in each public layout, and their error messages."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from spiral.eval.benchmarks import BenchmarkFormatError, Problem, load_benchmark


def write(dir_: Path, name: str, rows: list[dict]) -> Path:
    path = dir_ / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_math500_layout(tmp_path):
    write(tmp_path, "math500", [
        {"problem": "What is $1+1$?", "solution": "It is $\\boxed{2}$.", "answer": "2", "subject": "Algebra",
         "level": 1, "unique_id": "test/algebra/1.json"},
        {"problem": "Half of one?", "solution": "So $\\boxed{\\frac{1}{2}}$.", "unique_id": "test/algebra/2.json"},
    ])
    assert load_benchmark("math500", tmp_path) == [
        Problem("test/algebra/1.json", "What is $1+1$?", "2"),
        Problem("test/algebra/2.json", "Half of one?", "\\frac{1}{2}"),  # no `answer`: last box of the solution
    ]


def test_aime_and_amc_layouts(tmp_path):
    write(tmp_path, "aime24", [{"id": 60, "problem": "P", "solution": "S", "answer": "204", "url": "u"}])
    write(tmp_path, "aime25", [{"problem": "Q", "answer": "70", "solution": "70", "id": 0}])
    write(tmp_path, "amc23", [{"id": 3, "question": "R", "answer": 27.0, "url": "u"},
                              {"id": 4, "question": "T", "answer": 0.5, "url": "u"}])
    assert load_benchmark("aime24", tmp_path) == [Problem("60", "P", "204")]
    assert load_benchmark("aime25", tmp_path) == [Problem("0", "Q", "70")]
    assert [p.gold for p in load_benchmark("amc23", tmp_path)] == ["27", "0.5"]


def test_gsm8k_answer_after_hashes(tmp_path):
    write(tmp_path, "gsm8k", [{"question": "Eggs?", "answer": "16 - 3 = <<16-3=13>>13\n#### 1,300", "idx": 7}])
    assert load_benchmark("gsm8k", tmp_path) == [Problem("7", "Eggs?", "1300")]


def test_gsm8k_without_final_answer_is_an_error(tmp_path):
    path = write(tmp_path, "gsm8k", [{"question": "Eggs?", "answer": "no final line"}])
    with pytest.raises(BenchmarkFormatError, match=f"{path}:1.*####"):
        load_benchmark("gsm8k", tmp_path)


def test_minerva_gold_is_the_last_box_of_the_solution(tmp_path):
    write(tmp_path, "minerva_math", [
        {"problem": "Mass?", "solution": "First $\\boxed{1}$, finally \\[\\boxed{4.5e33}\\] grams.", "idx": 0},
        {"question": "Speed?", "answer": "3e8", "idx": 1},
    ])
    assert [p.gold for p in load_benchmark("minerva_math", tmp_path)] == ["4.5e33", "3e8"]


def test_olympiadbench_final_answer_list(tmp_path):
    write(tmp_path, "olympiadbench", [
        {"id": 1606, "question": "Find N.", "final_answer": ["2"], "context": None, "unit": None},
        {"id": 1607, "question": "All pairs?", "final_answer": ["$(3,2),(-3,2)$,$(1,1)$"], "context": "Let n be odd."},
    ])
    first, second = load_benchmark("olympiadbench", tmp_path)
    assert first == Problem("1606", "Find N.", "2")
    assert second.gold == "(3,2),(-3,2),(1,1)"
    assert second.question == "Let n be odd.\n\nAll pairs?"


def test_mmlu_pro_options_become_lettered_choices(tmp_path):
    write(tmp_path, "mmlu_pro", [
        {"question_id": 70, "question": "Which is a prime?", "options": ["4", "6", "7", "9"], "answer": "C",
         "answer_index": 2, "category": "math"},
        {"question_id": 71, "question": "Which is even?", "options": ["3", "8"], "answer": "B"},
    ])
    first, second = load_benchmark("mmlu_pro", tmp_path)
    assert first.gold == "C" and first.choices == ("4", "6", "7", "9")
    assert first.question == "Which is a prime?\n\n(A) 4\n(B) 6\n(C) 7\n(D) 9"
    assert second.gold == "B" and second.id == "71"


def test_gpqa_official_layout_is_shuffled_deterministically(tmp_path):
    rows = [{"Record ID": f"rec{i}", "Question": f"Q{i}?", "Correct Answer": f"right{i}",
             "Incorrect Answer 1": "w1", "Incorrect Answer 2": "w2", "Incorrect Answer 3": "w3"} for i in range(12)]
    write(tmp_path, "gpqa_diamond", rows)
    problems = load_benchmark("gpqa_diamond", tmp_path)
    for i, p in enumerate(problems):
        assert p.choices[ord(p.gold) - ord("A")] == f"right{i}"  # the gold letter points at the right answer
        assert sorted(p.choices) == sorted([f"right{i}", "w1", "w2", "w3"])
    assert len({p.gold for p in problems}) > 1  # not always in the same place
    assert load_benchmark("gpqa_diamond", tmp_path) == problems


def test_missing_field_names_field_file_and_line(tmp_path):
    path = write(tmp_path, "math500", [{"problem": "ok", "answer": "1"}, {"problem": "no answer here", "level": 3}])
    with pytest.raises(BenchmarkFormatError) as err:
        load_benchmark("math500", tmp_path)
    message = str(err.value)
    assert f"{path}:2" in message and "'answer'" in message and "level" in message

    write(tmp_path, "aime24", [{"id": 1, "answer": "5"}])
    with pytest.raises(BenchmarkFormatError, match="aime24.jsonl:1: missing field 'problem' or 'question'"):
        load_benchmark("aime24", tmp_path)


def test_bad_files_and_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="aime25.jsonl"):
        load_benchmark("aime25", tmp_path)
    with pytest.raises(ValueError, match="unknown benchmark 'aime2024'.*aime24"):
        load_benchmark("aime2024", tmp_path)
    (tmp_path / "amc23.jsonl").write_text('{"id": 1, "problem": "x", "answer": 1}\n{"id": 2, oops\n')
    with pytest.raises(BenchmarkFormatError, match="amc23.jsonl:2: not valid JSON"):
        load_benchmark("amc23", tmp_path)
    write(tmp_path, "aime24", [{"id": 1, "problem": "a", "answer": "1"}, {"id": 1, "problem": "b", "answer": "2"}])
    with pytest.raises(BenchmarkFormatError, match="duplicate"):
        load_benchmark("aime24", tmp_path)
    write(tmp_path, "mmlu_pro", [{"question": "q", "options": ["a", "b"], "answer": "E"}])
    with pytest.raises(BenchmarkFormatError, match="mmlu_pro.jsonl:1.*'E'"):
        load_benchmark("mmlu_pro", tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="`datasets` is installed")
def test_hub_loading_without_datasets_names_the_package():
    with pytest.raises(ImportError, match="`datasets` package"):
        load_benchmark("math500")

