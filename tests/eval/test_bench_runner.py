"""Benchmark runner end to end on the built-in tiny model through the real HF engine: records, metrics, resume."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from spiral.eval.bench_runner import (
    RESULTS_FILE,
    SAMPLES_FILE,
    prompt_text,
    run_benchmarks,
)
from spiral.eval.benchmarks import Problem
from spiral.eval.grading import grade_many
from spiral.types import SamplingSettings

SAMPLING = SamplingSettings(temperature=1.0, top_p=1.0, max_tokens=8)


@pytest.fixture(scope="module")
def engine():
    from spiral.models import resolve_model_path
    from spiral.rollout.hf_engine import HFEngine

    eng = HFEngine(resolve_model_path("builtin:tiny"), max_model_len=256, seed=0)
    yield eng
    eng.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    rows = {
        "math500": [{"problem": "What is $1+1$?", "answer": "2", "unique_id": "a"},
                    {"problem": "Half of 3?", "answer": "\\frac{3}{2}", "unique_id": "b"},
                    {"problem": "Square of 4?", "answer": "16", "unique_id": "c"},
                    # Longer than the engine's context: recorded as a truncated, wrong sample, not a crash.
                    {"problem": "count " * 400, "answer": "1", "unique_id": "long"}],
        "mmlu_pro": [{"question_id": 1, "question": "Which is a prime?", "options": ["4", "7"], "answer": "B"},
                     {"question_id": 2, "question": "Which is even?", "options": ["8", "9", "11"], "answer": "A"}],
    }
    for name, items in rows.items():
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    return data


def read_records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / SAMPLES_FILE).read_text().splitlines()]


@pytest.mark.slow
def test_end_to_end_records_and_metrics(engine, data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    results = run_benchmarks(engine, ["math500", "mmlu_pro"], data_dir=data_dir, samples=2, sampling=SAMPLING,
                             out_dir=out, model="builtin:tiny")
    records = read_records(out)
    keys = {(r["benchmark"], r["problem_id"], r["sample"]) for r in records}
    assert len(records) == len(keys) == (4 + 2) * 2
    assert keys == {("math500", p, k) for p in "abc" for k in (0, 1)} | {("math500", "long", k) for k in (0, 1)} | {
        ("mmlu_pro", p, k) for p in "12" for k in (0, 1)}
    for r in records:
        assert 0 <= r["num_tokens"] <= SAMPLING.max_tokens
        assert r["finish_reason"] in ("stop", "length")
    long = [r for r in records if r["problem_id"] == "long"]
    assert all(r["finish_reason"] == "length" and r["num_tokens"] == 0 and not r["correct"] for r in long)
    math = [r for r in records if r["benchmark"] == "math500"]
    assert [r["correct"] for r in math] == grade_many([(r["completion"], r["gold"]) for r in math])

    m = results["metrics"]["math500"]
    assert m["problems"] == 4 and m["samples"] == 2
    assert m["avg@2"] == pytest.approx(sum(r["correct"] for r in math) / len(math))
    assert m["truncation_rate"] == pytest.approx(sum(r["finish_reason"] == "length" for r in math) / len(math))
    assert m["mean_tokens"] == pytest.approx(sum(r["num_tokens"] for r in math) / len(math))
    assert m["format_failure_rate"] == pytest.approx(sum(r["answer"] is None for r in math) / len(math))
    assert set(m) >= {"pass@2", "maj@2", "stderr"}

    data_file = data_dir / "math500.jsonl"
    assert results["data"]["math500"]["sha256"] == hashlib.sha256(data_file.read_bytes()).hexdigest()
    import torch

    assert results["versions"]["torch"] == torch.__version__
    assert results["config"]["sampling"]["max_tokens"] == 8 and results["model"] == "builtin:tiny"
    assert json.loads((out / RESULTS_FILE).read_text()) == results
    printed = capsys.readouterr()
    assert "| math500 | 4 |" in printed.out and "| mmlu_pro | 2 |" in printed.out
    assert "eval 12/12" in printed.err  # the progress, as plain lines off a terminal


@pytest.mark.slow
def test_interrupted_run_resumes_where_it_stopped(engine, data_dir, tmp_path):
    out = tmp_path / "out"
    args = dict(data_dir=data_dir, sampling=SAMPLING, out_dir=out, verbose=False, batch_size=3)
    first = run_benchmarks(engine, ["math500", "mmlu_pro"], samples=2, **args)
    assert first["generated_samples"] == 12
    lines = (out / SAMPLES_FILE).read_text().splitlines(keepends=True)
    # Simulate a crash: five complete lines survive, the sixth was cut off mid-write.
    (out / SAMPLES_FILE).write_text("".join(lines[:5]) + lines[5][:20])

    resumed = run_benchmarks(engine, ["math500", "mmlu_pro"], samples=2, **args)
    assert resumed["generated_samples"] == 7
    records = read_records(out)
    assert [json.dumps(r) + "\n" for r in records[:5]] == lines[:5]
    assert len({(r["benchmark"], r["problem_id"], r["sample"]) for r in records}) == len(records) == 12

    assert run_benchmarks(engine, ["math500", "mmlu_pro"], samples=2, **args)["generated_samples"] == 0
    more = run_benchmarks(engine, ["math500", "mmlu_pro"], samples=3, **args)  # extends to a third sample
    assert more["generated_samples"] == 6 and more["metrics"]["math500"]["samples"] == 3

    with pytest.raises(ValueError, match="sampling"):
        run_benchmarks(engine, ["math500"], samples=2, data_dir=data_dir, out_dir=out, verbose=False,
                       sampling=SamplingSettings(temperature=0.6, top_p=0.95, max_tokens=8))


@pytest.mark.slow
def test_limit_keeps_the_first_problems(engine, data_dir, tmp_path):
    results = run_benchmarks(engine, ["mmlu_pro"], data_dir=data_dir, samples=1, sampling=SAMPLING,
                             out_dir=tmp_path / "out", limit=1, verbose=False)
    assert results["metrics"]["mmlu_pro"]["problems"] == 1
    assert [r["problem_id"] for r in read_records(tmp_path / "out")] == ["1"]


def test_prompt_templates():
    from transformers import AutoTokenizer

    from spiral.models import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("builtin:tiny"))
    problem = Problem("1", "What is 2+2?", "4")
    chat = prompt_text(problem, False, "chat", tokenizer)
    assert chat.startswith("<|im_start|>user\nWhat is 2+2?\nPlease reason step by step")
    assert chat.endswith("<|im_start|>assistant\n") and "\\boxed{}" in chat
    base = prompt_text(problem, True, "qwen3_base", tokenizer)
    assert base.startswith("<|im_start|>user\nWhat is 2+2?") and "letter of your final answer" in base
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="qwen3_base"):
        prompt_text(problem, False, "chat", tokenizer)
    with pytest.raises(ValueError, match="unknown benchmark template"):
        prompt_text(problem, False, "direct", tokenizer)


@pytest.mark.slow
def test_eval_command_runs_benchmarks_and_prints_json(data_dir, tmp_path, capsys):
    from spiral.cli import main

    argv = ["eval", "builtin:tiny", "--benchmarks", "math500,mmlu_pro", "--data-dir", str(data_dir), "--samples", "2",
            "--limit", "2", "--max-tokens", "6", "--max-model-len", "256", "--out", str(tmp_path / "out"), "--json"]
    assert main(argv) == 0
    output = json.loads(capsys.readouterr().out)
    metrics = output["benchmarks"]["metrics"]
    assert metrics["math500"]["problems"] == 2 and metrics["mmlu_pro"]["samples"] == 2
    assert output["benchmarks"]["config"]["sampling"] == {"temperature": 0.6, "top_p": 0.95, "max_tokens": 6,
                                                          "seed": None}
    assert len(read_records(tmp_path / "out")) == 8


def test_eval_command_refuses_nothing_or_benchmarks_for_agents(capsys):
    from spiral.cli import main

    assert main(["eval", "builtin:tiny"]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    assert main(["eval", "random", "--benchmarks", "math500"]) == 2
    assert "need a model" in capsys.readouterr().err


def test_eval_command_games_json_holds_kuhn_exploitability(capsys):
    from spiral.cli import main

    assert main(["eval", "random", "--games", "kuhn_poker", "--episodes", "20", "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["games"]["kuhn_poker"]["exploitability"] == pytest.approx(11 / 24)
    assert set(output["games"]["kuhn_poker"]["random"]) >= {"seat0", "seat1"}
