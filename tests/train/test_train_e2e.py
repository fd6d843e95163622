"""End-to-end `spiral train` on the built-in tiny model: outputs, resume after SIGKILL, bad config."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from tests.launch import clean_env
from tests.train.helpers import (
    deterministic_view,
    read_metrics,
    run_train,
    spiral_train_cmd,
)

pytestmark = pytest.mark.slow


def test_two_step_run_writes_everything(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_train(run_dir, "trainer.steps=2")
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [0, 1, 2]
    last = rows[-1]
    for key in ("loss/policy", "rollout/invalid_rate", "rae/baseline/kuhn_poker/seat0", "time/rollout",
                "time/update", "time/sync", "eval/kuhn_poker/exploitability", "advantage/mean",
                "returns/kuhn_poker/seat0", "rollout/response_length_mean", "perf/samples_per_s"):
        assert key in last, key
    assert 0.0 <= rows[0]["eval/kuhn_poker/exploitability"] <= 3.0
    assert rows[1]["rollout/samples"] >= 16
    assert (run_dir / "config.yaml").is_file()
    assert sorted(p.name for p in (run_dir / "transcripts").iterdir()) == ["step-000001.jsonl", "step-000002.jsonl"]
    model = AutoModelForCausalLM.from_pretrained(run_dir / "checkpoints" / "step-000002" / "model")
    assert model.config.model_type == "qwen3"


def test_resume_after_sigkill_reproduces_metrics(tmp_path: Path) -> None:
    # Per-state RAE baselines: the checkpoint must carry the seats' baselines and the states' alike.
    steps = ["trainer.steps=4", "algo.rae.baseline=state"]
    reference = tmp_path / "reference"
    run_train(reference, *steps)

    interrupted = tmp_path / "interrupted"
    proc = subprocess.Popen(spiral_train_cmd(interrupted, *steps), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, env=clean_env())
    metrics = interrupted / "metrics.jsonl"
    deadline = time.time() + 600
    # Kill after step 3 is logged: the checkpoint of step 2 exists, step 4's does not.
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and any(r["step"] == 3 for r in read_metrics(interrupted)):
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (interrupted / "checkpoints" / "step-000004").exists()

    run_train(interrupted, *steps)  # run.resume=auto picks up step 2
    want = {r["step"]: deterministic_view(r) for r in read_metrics(reference)}
    got = {r["step"]: deterministic_view(r) for r in read_metrics(interrupted)}
    assert sorted(got) == [0, 1, 2, 3, 4]
    assert 1 <= got[4]["rae/states"] <= 12  # Kuhn Poker has 12 information sets, 6 per seat
    for step in (3, 4):
        assert got[step].keys() == want[step].keys()
        for key, value in want[step].items():
            assert got[step][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (step, key)


def test_bad_config_fails_before_running(tmp_path: Path) -> None:
    cmd = spiral_train_cmd(tmp_path / "run", "trainer.stepz=2")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=clean_env())
    assert proc.returncode == 2
    assert "trainer.stepz" in proc.stderr and "trainer.steps" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_online_benchmark_eval_is_logged(tmp_path: Path) -> None:
    import json

    data = tmp_path / "data"
    data.mkdir()
    rows = [{"question": f"What is {i} + {i}?", "answer": f"Add them.\n#### {2 * i}"} for i in range(4)]
    (data / "gsm8k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_dir = tmp_path / "run"
    run_train(run_dir, "trainer.steps=1", "eval.every=1", "eval.games=[]", "eval.benchmarks=[gsm8k]",
              f"eval.data_dir={data}", "eval.benchmark_limit=2", "eval.max_tokens=8")
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [0, 1]
    for row in rows:
        assert 0.0 <= row["eval/bench/gsm8k/accuracy"] <= 1.0
    assert (run_dir / "bench" / "step-000001" / "results.json").is_file()


@pytest.mark.parametrize("opponent", ["random", "pool"])
def test_fixed_and_pool_opponents_train_only_the_learning_seat(tmp_path: Path, opponent: str) -> None:
    import json

    run_dir = tmp_path / "run"
    run_train(run_dir, "trainer.steps=3", f"rollout.opponent={opponent}", "rollout.pool_size=2",
              "checkpoint.every=1", "eval.every=0")
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2, 3]
    # Against an opponent each game has one policy seat; the pool plays self-play until step 1's
    # checkpoint exists.
    first = 1 if opponent == "random" else 2
    for path in sorted((run_dir / "transcripts").iterdir())[first - 1:]:
        for line in path.read_text().splitlines():
            record = json.loads(line)
            agents = {turn["agent"] for turn in record["transcript"]}
            assert "policy" in agents and len(agents) == 2, agents
    if opponent == "pool":
        state = json.loads((run_dir / "checkpoints" / "step-000003" / "state.json").read_text())
        assert len(state["state"]["opponent_pool"]["paths"]) == 2  # checkpoints of steps 1 and 2 are in the pool


def _assert_resuming_from_step_2_logs_steps_3_and_4_alike(tmp_path: Path, run_dir: Path, args: list[str],
                                                         rows: dict[int, dict]) -> None:
    """A run of `args` resumed from `run_dir`'s step-2 checkpoint logs steps 3 and 4 as the uninterrupted `rows`."""
    resumed = tmp_path / "resumed"
    run_train(resumed, *args, f"run.resume={run_dir / 'checkpoints' / 'step-000002'}")
    got = {r["step"]: deterministic_view(r) for r in read_metrics(resumed)}
    assert sorted(got) == [3, 4]
    for step in (3, 4):
        want = deterministic_view(rows[step])
        assert got[step].keys() == want.keys()
        for key, value in want.items():
            assert got[step][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (step, key)


def test_average_policy_mixes_the_pool_members_read_out_at_their_checkpoints(tmp_path: Path) -> None:
    import json

    from spiral.eval.average_policy import average_table
    from spiral.eval.exploitability import kuhn_target

    run_dir = tmp_path / "run"
    args = ["trainer.steps=4", "rollout.opponent=pool", "rollout.pool_size=2", "checkpoint.every=1",
            "checkpoint.keep=4", "eval.every=2", "eval.average_policy=true"]
    run_train(run_dir, *args)
    rows = {r["step"]: r for r in read_metrics(run_dir)}
    for step in (0, 2, 4):
        assert 0.0 <= rows[step]["eval/kuhn_poker/average_exploitability"] <= 1.0
    # An empty pool averages the current policy alone.
    assert rows[0]["eval/kuhn_poker/average_exploitability"] == pytest.approx(rows[0]["eval/kuhn_poker/exploitability"])
    # At step 4 the pool holds steps 2 and 3 (step 3 read out at its checkpoint, not evaluated); step 4 is current.
    def policy(step: int) -> dict:
        return json.loads((run_dir / "checkpoints" / f"step-{step:06d}" / "state.json").read_text())["state"]["policy"]

    target = kuhn_target()
    tables = [policy(step)["kuhn_poker"] for step in (2, 3, 4)]
    expected = target.score(average_table(target, tables), "table").exploitability
    assert rows[4]["eval/kuhn_poker/average_exploitability"] == pytest.approx(expected, abs=1e-12)
    assert rows[4]["eval/kuhn_poker/exploitability"] == pytest.approx(target.score(tables[-1], "table").exploitability)

    # Resumed from step 2, a run plays the same pool (steps 1 and 2) and averages the same saved tables.
    _assert_resuming_from_step_2_logs_steps_3_and_4_alike(tmp_path, run_dir, args, rows)


def test_pool_ratings_follow_the_games_and_resume_exactly(tmp_path: Path) -> None:
    from spiral.rollout.opponents import OpponentPool
    from spiral.rollout.ratings import PoolRatings, policy_result
    from spiral.sft.data import read_records

    run_dir = tmp_path / "run"
    args = ["trainer.steps=4", "rollout.opponent=pool", "rollout.pool_size=2", "checkpoint.every=1",
            "checkpoint.keep=4", "eval.every=0", "rollout.pool_ratings=true"]
    run_train(run_dir, *args)
    rows = {r["step"]: r for r in read_metrics(run_dir)}

    def ratings(step: int) -> dict[str, float]:
        return {k: v for k, v in rows[step].items() if k.startswith("pool/rating/")}

    assert ratings(1) == {"pool/rating/policy": 25.0}  # self-play while the pool is empty: nothing rated
    assert set(ratings(4)) == {"pool/rating/policy", "pool/rating/step-2", "pool/rating/step-3",
                               "pool/rating/policy_minus_best"}
    # Step 2 played step 1's checkpoint, which joined with the policy's (prior) rating: replaying that step's
    # games from its transcript gives the logged ratings.
    results = [policy_result(r) for r in read_records([str(run_dir / "transcripts" / "step-000002.jsonl")])]
    assert 0.0 in results and 1.0 in results
    pool = OpponentPool(2)
    league = PoolRatings(pool)
    pool.add("step-1")
    league.join("step-1", 1)
    league.rate("step-1", results)
    assert ratings(2) == pytest.approx(league.metrics(), abs=1e-9)
    assert ratings(2)["pool/rating/policy"] != 25.0

    # Resumed from step 2, a run logs the same ratings (and everything else) as the uninterrupted one.
    _assert_resuming_from_step_2_logs_steps_3_and_4_alike(tmp_path, run_dir, args, rows)


def test_non_finite_updates_are_skipped_and_logged_with_the_console_on(tmp_path: Path) -> None:
    """Every update of this run is non-finite (see `plugin_games.HugeStakes`): each must be skipped, shown
    on the console and in metrics.jsonl, the weights left as they were, and the checkpoints written."""
    from safetensors.torch import load_file

    from spiral.models import resolve_model_path

    run_dir = tmp_path / "run"
    args = ["trainer.steps=2", "checkpoint.every=1", "eval.every=0", "logging.console=true",
            "games=[{name: 'tests.train.plugin_games:HugeStakes'}]"]
    proc = run_train(run_dir, *args)
    assert "step 2/2" in proc.stderr and "loss=nan" in proc.stderr, proc.stderr[-2000:]
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        assert row["train/skipped"] == 2 and row["train/optimizer_steps"] == 0 and row["loss/policy"] is None
    saved = load_file(run_dir / "checkpoints" / "step-000002" / "model" / "model.safetensors")
    initial = load_file(Path(resolve_model_path("builtin:tiny")) / "model.safetensors")
    assert saved.keys() == initial.keys() and all(saved[k].equal(initial[k]) for k in saved)

    again = run_train(run_dir, *args)  # trainer.steps is reached: says so, trains nothing
    assert "step 2 and trainer.steps is 2: nothing left to train" in again.stderr
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2]


def test_a_game_that_crashes_mid_training_stops_the_run_with_a_replay(tmp_path: Path) -> None:
    import re

    from spiral.games import make_game

    spec = "tests.train.plugin_games:CrashesLate"
    cmd = spiral_train_cmd(tmp_path / "run", "trainer.steps=2", "eval.every=0", f"games=[{{name: '{spec}'}}]")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=clean_env())
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"spiral train: error: game '{spec}' failed while applying") and "plugin bug" in last
    seed = int(re.search(r"g\.reset\((\d+)\)", last).group(1))
    moves = eval(re.search(r"after moves (\[[^\]]*\])", last).group(1))  # noqa: S307 - a list literal we wrote
    attempt = re.search(r"while applying '([^']*)'", last).group(1)
    game = make_game(spec)
    game.reset(seed)
    for move in moves:
        game.apply_action(move)
    with pytest.raises(RuntimeError, match="plugin bug"):
        game.apply_action(attempt)
