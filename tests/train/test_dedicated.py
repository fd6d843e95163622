"""`trainer.layout: dedicated` under torchrun with gloo: actor ranks play, learner ranks train."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import torch
from transformers import AutoModelForCausalLM

from spiral.config.schema import SpiralConfig
from spiral.dedicated.learner_loop import decode_batches, encode_batches, fresh_samples
from spiral.errors import SpiralError
from spiral.types import GameRecord, TurnRecord, TurnSample
from tests.launch import clean_env, torchrun_cmd
from tests.train.helpers import (
    REPO,
    deterministic_view,
    kill_rank_after_first_checkpoint,
    read_metrics,
    run_train,
    spiral_train_cmd,
)

SMALL = ["trainer.steps=3", "eval.every=0", "checkpoint.every=1"]


def _sample(version: int) -> TurnSample:
    return TurnSample(game="kuhn_poker", seat=0, prompt_ids=[1, 2], completion_ids=[3], logprobs=[-0.5], ret=1.0,
                      version=version)


def test_samples_past_the_bound_are_dropped_and_counted() -> None:
    batches = [{"samples": [_sample(4), _sample(3)]}, {"samples": [_sample(2), _sample(4)]}]
    kept, dropped, staleness = fresh_samples(batches, step=5, max_staleness=1)
    assert [s.version for s in kept] == [4, 3, 4] and dropped == 1 and staleness == [0, 1, 0]


def test_in_flight_batches_survive_a_checkpoint_as_json() -> None:
    import json

    record = GameRecord(game="kuhn_poker", seed=3, transcript=[TurnRecord(0, "policy", "obs", "x", "bet")],
                        returns=[1.0, -1.0])
    queue = [[{"step": 4, "version": 2, "samples": [_sample(2)], "records": [record], "stats": {"games": 1.0},
               "idle_s": 0.0, "rollout_s": 1.0}]]
    assert decode_batches(json.loads(json.dumps(encode_batches(queue)))) == queue


def test_staleness_needs_the_dedicated_layout() -> None:
    cfg = SpiralConfig()
    cfg.rollout.max_staleness = 1
    with pytest.raises(ValueError, match="rollout.max_staleness.*trainer.layout: dedicated"):
        cfg.__post_init__()


def test_a_job_without_a_learner_rank_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from spiral.dedicated.roles import split_job

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SpiralError, match="trainer.actor_ranks=2 needs at least 3 ranks"):
        split_job(2)


# -- torchrun runs -----------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {**clean_env(), "OMP_NUM_THREADS": "1"}


def _dedicated(ranks: int, run_dir: Path, *extra: str) -> list[str]:
    return torchrun_cmd(ranks, *spiral_train_cmd(run_dir, "trainer.layout=dedicated", *extra)[1:])


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, check=False, env=_env(), cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.slow
@pytest.mark.distributed
def test_staleness_zero_reproduces_the_colocated_run(tmp_path: Path) -> None:
    args = ["trainer.steps=2", "eval.every=2", "rollout.samples_per_step=12"]
    run_train(tmp_path / "colocated", *args, timeout=1800)
    _run(_dedicated(2, tmp_path / "dedicated", "trainer.actor_ranks=1", "rollout.max_staleness=0", *args))
    want, got = read_metrics(tmp_path / "colocated"), read_metrics(tmp_path / "dedicated")
    assert [r["step"] for r in got] == [r["step"] for r in want] == [0, 1, 2]
    for w, g in zip(want, got):
        assert g["step"] == 0 or g["async/staleness_max"] == 0.0
        for key, value in deterministic_view(w).items():  # training, rollout, RAE and evaluation metrics
            assert g[key] == pytest.approx(value, rel=1e-5, abs=1e-6), (w["step"], key)


@pytest.mark.slow
@pytest.mark.distributed
def test_two_actors_one_step_stale_and_an_exact_resume(tmp_path: Path) -> None:
    args = ["trainer.actor_ranks=2", "rollout.max_staleness=1", *SMALL]
    reference = tmp_path / "reference"
    _run(_dedicated(3, reference, *args))
    rows = read_metrics(reference)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(r["async/stale_dropped"] == 0 for r in rows)
    # Step 1 trains on the initial weights' batch; from step 2 on the actors played a step ahead.
    assert [r["async/staleness_max"] for r in rows] == [0.0, 1.0, 1.0]
    assert [r["async/queue_depth"] for r in rows] == [1.0, 1.0, 0.0]
    assert all(r["rollout/samples"] >= 16 for r in rows)  # the budget is split between the two actors

    # Killed after step 2's checkpoint, which holds batch 3 (received, not trained): the resume trains on it.
    interrupted = tmp_path / "interrupted"
    launcher = subprocess.Popen(_dedicated(3, interrupted, *args), env=_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 1800
    while time.time() < deadline and launcher.poll() is None:
        if (interrupted / "metrics.jsonl").exists() and any(r["step"] == 2 for r in read_metrics(interrupted)):
            # torchrun starts each worker in a session of its own: kill them, not only the launcher's group.
            for proc in [*psutil.Process(launcher.pid).children(recursive=True), psutil.Process(launcher.pid)]:
                proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.2)
    launcher.wait(timeout=60)
    assert launcher.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (interrupted / "checkpoints" / "step-000003").exists()
    _run(_dedicated(3, interrupted, *args))
    resumed = {r["step"]: r for r in read_metrics(interrupted)}
    assert sorted(resumed) == [1, 2, 3]
    for key, value in deterministic_view(rows[2]).items():
        assert resumed[3][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("stage", [2, 3])
def test_two_learners_one_actor(tmp_path: Path, stage: int) -> None:
    run_dir = tmp_path / "run"
    _run(_dedicated(3, run_dir, "trainer.actor_ranks=1", "rollout.max_staleness=1", f"trainer.zero_stage={stage}",
                    "trainer.steps=2", "eval.every=0"))
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        assert row["dist/world_size"] == 2  # the learners' own world: the actor is not in it
        assert row["dist/weights_divergence"] == 0.0 and row["dist/rae_divergence"] == 0.0
        assert row["async/staleness_max"] <= 1
    AutoModelForCausalLM.from_pretrained(run_dir / "checkpoints" / "step-000002" / "model")


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("stage", [2, 3])
def test_the_actor_holds_the_learners_weights_after_a_broadcast(tmp_path: Path, stage: int) -> None:
    from spiral.models import resolve_model_path

    tiny_path = resolve_model_path("builtin:tiny")
    cmd = torchrun_cmd(3, str(REPO / "tests/train/bridge_worker.py"), str(tmp_path), str(stage), tiny_path)
    env = {**_env(), "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(cmd, check=False, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    learners = [torch.load(tmp_path / f"learner-{r}.pt") for r in range(2)]
    actor = torch.load(tmp_path / "actor.pt")
    assert learners[0]["world"] == 2 and learners[0]["buckets"] > 1 and actor["header"] == {"version": 1}
    sent = learners[0]["weights"]
    assert sent.keys() == actor["weights"].keys()
    assert all(torch.equal(sent[k], actor["weights"][k]) for k in sent)
    initial = AutoModelForCausalLM.from_pretrained(tiny_path).state_dict()
    assert any(not torch.equal(sent[k], initial[k]) for k in sent)  # the update moved them: a real broadcast


@pytest.mark.slow
@pytest.mark.distributed
def test_a_killed_actor_ends_the_job_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cmd = _dedicated(3, run_dir, "trainer.actor_ranks=2", "rollout.max_staleness=1", "trainer.steps=200",
                     "eval.every=0", "checkpoint.every=1")
    # No hang: the bridge fails, torchrun stops the other ranks.
    ended = kill_rank_after_first_checkpoint(cmd, _env(), run_dir, 2, checkpoint_wait_s=1800, exit_wait_s=300)
    output = ended.stdout
    assert ended.returncode != 0
    assert re.search(r"rank\s*:\s*2\b", output) or "actor 1 (rank 2)" in output, output[-3000:]
    from spiral.learner.checkpoint import latest_checkpoint

    last = latest_checkpoint(run_dir)
    assert last is not None
    AutoModelForCausalLM.from_pretrained(last / "model")
