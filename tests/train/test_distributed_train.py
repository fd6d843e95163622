"""`spiral train` under torchrun with two gloo ranks: agreement, global budget, resume, a dying rank."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psutil
import pytest
from transformers import AutoModelForCausalLM

from tests.launch import clean_env, torchrun_cmd
from tests.train.helpers import REPO, kill_rank_after_first_checkpoint, read_metrics, spiral_train_cmd

pytestmark = [pytest.mark.slow, pytest.mark.distributed]


def _torchrun(run_dir: Path, *extra: str) -> list[str]:
    """The one-process `spiral train` command line (its `-m spiral.cli ...` part), on two ranks."""
    return torchrun_cmd(2, *spiral_train_cmd(run_dir, *extra)[1:])


def _env() -> dict[str, str]:
    return {**clean_env(), "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("stage", [0, 2])
def test_two_ranks_agree_and_resume(tmp_path: Path, stage: int) -> None:
    run_dir = tmp_path / "run"
    args = [f"trainer.zero_stage={stage}", "rollout.samples_per_step=16", "eval.every=0"]
    proc = subprocess.run(_torchrun(run_dir, "trainer.steps=2", *args), env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2]  # rank 0 alone writes metrics
    for row in rows:
        assert row["dist/world_size"] == 2
        assert row["dist/weights_divergence"] == 0.0 and row["dist/rae_divergence"] == 0.0
        assert row["rollout/samples"] >= 16  # the budget is global: 8 per rank at least
    # Resume on the same number of ranks continues from step 2 (extending the run is a config change).
    proc = subprocess.run(_torchrun(run_dir, "trainer.steps=3", "run.allow_config_change=true", *args), env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[-1]["dist/weights_divergence"] == 0.0


def test_a_dying_rank_ends_the_job_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cmd = _torchrun(run_dir, "trainer.steps=200", "eval.every=0", "checkpoint.every=1")
    # No hang: torchrun tears the other rank down.
    ended = kill_rank_after_first_checkpoint(cmd, _env(), run_dir, 1, checkpoint_wait_s=600, exit_wait_s=180)
    output = ended.stdout
    assert ended.returncode != 0
    assert re.search(r"rank\s*:\s*1\b", output) and "SIGKILL" in output, output[-3000:]
    from spiral.learner.checkpoint import latest_checkpoint

    last = latest_checkpoint(run_dir)
    assert last is not None
    AutoModelForCausalLM.from_pretrained(last / "model")


@pytest.mark.parametrize("stage", [0, 2, 3])
def test_resume_on_a_different_number_of_ranks(tmp_path: Path, stage: int) -> None:
    """Two ranks train, one process resumes: ZeRO-0 keeps the optimizer state whole; ZeRO 2 and 3 shard
    it by rank, so the resume converts the checkpoint to DeepSpeed's universal format first."""
    run_dir = tmp_path / "run"
    args = [f"trainer.zero_stage={stage}", "eval.every=0"]
    proc = subprocess.run(_torchrun(run_dir, "trainer.steps=2", *args), env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    proc = subprocess.run(spiral_train_cmd(run_dir, "trainer.steps=3", "run.allow_config_change=true", *args),
                          env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert "dist/world_size" in rows[1] and "dist/world_size" not in rows[2]
    assert rows[2]["train/optimizer_steps"] >= 1
    checkpoint = run_dir / "checkpoints" / "step-000002"
    assert (checkpoint / "deepspeed-universal").is_dir() == (stage > 0)
    assert (checkpoint / "deepspeed").is_dir()  # the original shards are kept as they were


def _finish(cmd: list[str], timeout: int) -> subprocess.CompletedProcess:
    """Run a torchrun command to its end; past `timeout`, kill it with its ranks (each in a session of its own)
    and fail."""
    proc = subprocess.Popen(cmd, env=_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        launcher = psutil.Process(proc.pid)
        for process in [*launcher.children(recursive=True), launcher]:
            process.kill()
        proc.communicate()
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.vllm
def test_two_ranks_each_with_a_vllm_engine(tmp_path: Path) -> None:
    """Every rank owns an in-process vLLM engine (external-launcher mode) next to its learner shard. Rank 0 alone
    evaluates, against a model opponent whose engine every rank built at start-up: building one is collective
    under torchrun, and an engine built on rank 0 alone waited for the other rank forever."""
    run_dir = tmp_path / "run"
    args = ["rollout.engine=vllm", "rollout.kv_cache_gb=0.25", "trainer.zero_stage=2", "rollout.samples_per_step=16",
            "trainer.steps=2", "eval.every=2", "eval.opponents=[builtin:tiny]", "eval.episodes=2",
            "eval.exploitability=false"]
    proc = _finish(_torchrun(run_dir, *args), timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [0, 1, 2]
    for row in rows[1:]:
        assert row["dist/world_size"] == 2
        assert row["dist/weights_divergence"] == 0.0 and row["dist/rae_divergence"] == 0.0
        assert row["rollout/samples"] >= 16
    for row in (rows[0], rows[2]):
        assert row["eval/kuhn_poker/builtin:tiny/games"] == 4  # two episodes in each seat
