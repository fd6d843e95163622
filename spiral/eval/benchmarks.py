"""Benchmark loaders: math and multiple-choice test sets as `Problem`s, from local JSONL or the HF hub.

Local files are `<data_dir>/<name>.jsonl` in the field layout the public harnesses distribute; a row that
lacks a needed field is reported with the field, file and line. No data ships with spiral.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spiral.text import last_boxed

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class BenchmarkFormatError(ValueError):
    """A benchmark row or file that cannot be read; the message names the field and where it was missing."""


@dataclass(frozen=True)
class Problem:
    """One test question: free-form math (`choices` is None) or multiple choice (`gold` is a letter)."""

    id: str
    question: str
    gold: str
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where a benchmark lives on the hub and how one of its rows becomes a `Problem`."""

    name: str
    hub_id: str
    hub_config: str | None
    hub_split: str
    convert: Callable[[dict[str, Any], int, str], Problem]
    """(row, index, where) → Problem; `where` names the file and line for error messages."""

    @property
    def multiple_choice(self) -> bool:
        return self.name in MULTIPLE_CHOICE


def _field(row: dict[str, Any], names: Sequence[str], where: str) -> Any:
    """The first of `names` present (and not null) in `row`, else an error naming them and `where`."""
    for name in names:
        if row.get(name) is not None:
            return row[name]
    wanted = " or ".join(repr(n) for n in names)
    raise BenchmarkFormatError(f"{where}: missing field {wanted} (the row has: {', '.join(sorted(row)) or 'nothing'})")


def _text(value: Any) -> str:
    """An answer value as text: 27.0 → "27", lists joined by ", "."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value).strip()


def _row_id(row: dict[str, Any], index: int, names: Sequence[str] = ("id", "unique_id", "idx", "question_id")) -> str:
    for name in names:
        if row.get(name) is not None:
            return str(row[name])
    return str(index)


def _free_form(question_fields: Sequence[str], gold: Callable[[dict[str, Any], str], str]):
    def convert(row: dict[str, Any], index: int, where: str) -> Problem:
        question = _text(_field(row, question_fields, where))
        return Problem(id=_row_id(row, index), question=question, gold=gold(row, where))

    return convert


def _answer_or_boxed_solution(row: dict[str, Any], where: str) -> str:
    """The `answer` field, else the last `\\boxed{}` of `solution` (MATH and Minerva ship one or the other)."""
    if row.get("answer") is not None:
        return _text(row["answer"])
    solution = _text(_field(row, ("answer", "solution"), where))
    boxed = last_boxed(solution)
    if boxed is None:
        raise BenchmarkFormatError(f"{where}: no 'answer' field and the 'solution' holds no \\boxed{{}} answer")
    return boxed.strip()


def _gsm8k_gold(row: dict[str, Any], where: str) -> str:
    answer = _text(_field(row, ("answer",), where))
    if "####" not in answer:
        raise BenchmarkFormatError(f"{where}: field 'answer' has no '#### <number>' final answer")
    return answer.rsplit("####", 1)[1].strip().replace(",", "")


def _olympiad_gold(row: dict[str, Any], where: str) -> str:
    # final_answer is a list of LaTeX strings, each possibly `$a$,$b$`; math-verify wants the bare LaTeX.
    return _text(_field(row, ("final_answer", "answer"), where)).replace("$", "").strip()


def _olympiad(row: dict[str, Any], index: int, where: str) -> Problem:
    question = _text(_field(row, ("question", "problem"), where))
    if row.get("context"):
        question = f"{_text(row['context'])}\n\n{question}"
    return Problem(id=_row_id(row, index), question=question, gold=_olympiad_gold(row, where))


def render_choices(question: str, choices: Sequence[str]) -> str:
    """The question followed by its options labelled (A), (B), ..."""
    options = "\n".join(f"({LETTERS[i]}) {choice}" for i, choice in enumerate(choices))
    return f"{question}\n\n{options}"


def _choice_problem(row_id: str, question: str, choices: list[str], gold_index: int, where: str) -> Problem:
    if not 0 <= gold_index < len(choices):
        raise BenchmarkFormatError(f"{where}: answer index {gold_index} is outside the {len(choices)} options")
    return Problem(id=row_id, question=render_choices(question, choices), gold=LETTERS[gold_index],
                   choices=tuple(choices))


def _gold_index(row: dict[str, Any], n_choices: int, where: str) -> int:
    """Index of the right option from `answer_index`, or an `answer` letter or index."""
    if row.get("answer_index") is not None:
        return int(row["answer_index"])
    answer = _field(row, ("answer", "answer_index"), where)
    if isinstance(answer, int):
        return answer
    letter = str(answer).strip().strip("()").upper()
    if len(letter) != 1 or letter not in LETTERS[:n_choices]:
        raise BenchmarkFormatError(f"{where}: field 'answer' is {answer!r}, not a letter of one of {n_choices} options")
    return LETTERS.index(letter)


def _gpqa(row: dict[str, Any], index: int, where: str) -> Problem:
    row_id = _row_id(row, index, ("Record ID", "id", "idx"))
    if "Correct Answer" in row or "Question" in row:
        # The official layout lists the right answer first; shuffle it with a per-question seed so the gold
        # letter is spread over A-D but the same on every run.
        question = _text(_field(row, ("Question",), where))
        options = [_text(_field(row, (key,), where))
                   for key in ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")]
        order = list(range(4))
        random.Random(f"gpqa:{row_id}").shuffle(order)
        return _choice_problem(row_id, question, [options[i] for i in order], order.index(0), where)
    return _listed_choices(row, index, where)


def _listed_choices(row: dict[str, Any], index: int, where: str) -> Problem:
    """Rows that carry `options` (or `choices`) as a list and the right one as a letter or index (MMLU-Pro)."""
    question = _text(_field(row, ("question", "problem"), where))
    options = _field(row, ("options", "choices"), where)
    if not isinstance(options, list) or not options:
        raise BenchmarkFormatError(f"{where}: field 'options' must be a non-empty list, got {type(options).__name__}")
    options = [_text(o) for o in options]
    return _choice_problem(_row_id(row, index), question, options, _gold_index(row, len(options), where), where)


_QUESTION = ("problem", "question")
_MATH = _free_form(_QUESTION, _answer_or_boxed_solution)

BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in [
        BenchmarkSpec("math500", "HuggingFaceH4/MATH-500", None, "test", _MATH),
        BenchmarkSpec("aime24", "HuggingFaceH4/aime_2024", None, "train", _MATH),
        BenchmarkSpec("aime25", "math-ai/aime25", None, "test", _MATH),
        BenchmarkSpec("amc23", "math-ai/amc23", None, "test", _MATH),
        BenchmarkSpec("gsm8k", "openai/gsm8k", "main", "test", _free_form(("question",), _gsm8k_gold)),
        BenchmarkSpec("minerva_math", "math-ai/minervamath", None, "test", _MATH),
        BenchmarkSpec("olympiadbench", "Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train", _olympiad),
        BenchmarkSpec("gpqa_diamond", "Idavidrein/gpqa", "gpqa_diamond", "train", _gpqa),
        BenchmarkSpec("mmlu_pro", "TIGER-Lab/MMLU-Pro", None, "test", _listed_choices),
    ]
}
MULTIPLE_CHOICE = frozenset({"gpqa_diamond", "mmlu_pro"})


def get_benchmark(name: str) -> BenchmarkSpec:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def benchmark_file(name: str, data_dir: str | Path) -> Path:
    """The local JSONL file a benchmark is read from."""
    return Path(data_dir) / f"{get_benchmark(name).name}.jsonl"


def _read_jsonl(path: Path) -> Iterable[tuple[dict[str, Any], str]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise BenchmarkFormatError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise BenchmarkFormatError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield row, where


def _read_hub(spec: BenchmarkSpec) -> Iterable[tuple[dict[str, Any], str]]:
    try:
        import datasets
    except ImportError as err:
        raise ImportError(
            f"loading {spec.name!r} from the Hugging Face hub needs the `datasets` package (pip install datasets); "
            f"or pass a data directory holding {spec.name}.jsonl"
        ) from err
    rows = datasets.load_dataset(spec.hub_id, spec.hub_config, split=spec.hub_split)
    for index, row in enumerate(rows):
        yield dict(row), f"{spec.hub_id} ({spec.hub_split}) row {index}"


def load_benchmark(name: str, data_dir: str | Path | None = None) -> list[Problem]:
    """The problems of benchmark `name`: from `<data_dir>/<name>.jsonl`, or the HF hub when `data_dir` is None."""
    spec = get_benchmark(name)
    if data_dir is None:
        rows = _read_hub(spec)
    else:
        path = benchmark_file(name, data_dir)
        if not path.is_file():
            raise FileNotFoundError(f"benchmark {name!r}: no file {path} (expected one JSON object per line)")
        rows = _read_jsonl(path)
    problems = [spec.convert(row, index, where) for index, (row, where) in enumerate(rows)]
    if not problems:
        raise BenchmarkFormatError(f"benchmark {name!r} has no rows")
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):  # resume bookkeeping keys samples by problem id
        raise BenchmarkFormatError(f"benchmark {name!r} has duplicate problem ids")
    return problems
