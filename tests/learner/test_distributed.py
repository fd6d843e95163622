"""The learner under torchrun with two gloo ranks: identical weights everywhere, equal to one process."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from spiral.learner.learner import Learner
from tests.launch import clean_env, torchrun_cmd
from tests.learner.helpers import make_samples, small_config, weights

REPO = Path(__file__).resolve().parents[2]


def _torchrun(ranks: int, script: str, *args: str) -> subprocess.CompletedProcess:
    env = clean_env()
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}")
    cmd = torchrun_cmd(ranks, str(REPO / "tests/learner" / script), *args)
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.distributed
def test_ranks_exit_cleanly():
    # Without tearing the gloo group down before interpreter shutdown, most 5-rank runs of this worker
    # had a rank abort on exit ("terminate called without an active exception"); three clean runs in a
    # row would then be rare.
    for _ in range(3):
        proc = _torchrun(5, "exit_worker.py")
        assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("stage", [2, 3])
def test_two_ranks_match_one_process(tmp_path, tiny_path, stage):
    proc = _torchrun(2, "dist_worker.py", str(tmp_path), str(stage), tiny_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank-{r}.pt") for r in range(2)]
    assert ranks[0]["world"] == 2
    w0, w1 = ranks[0]["weights"], ranks[1]["weights"]
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)
    assert ranks[0]["metrics"] == ranks[1]["metrics"]
    assert (tmp_path / "run/checkpoints/step-000001/model/config.json").is_file()

    # The global normalisation makes two half-batches on two ranks one whole batch in one process.
    single = Learner(small_config(zero_stage=stage), tiny_path)
    single.update(make_samples(6))
    expected = weights(single)
    # Compare against Adam's step size: where a gradient is near zero, g/(|g|+eps) turns
    # reduction-order noise between layouts into visible (but tiny next to lr) differences: up to
    # 0.07 lr at ZeRO-3 when this process ran single-threaded (OMP_NUM_THREADS=1), and 0.134 lr, the same
    # on every run, with two threads and DeepSpeed 0.19.8 (2026-11-29), so allow 0.2 lr. A real layout bug
    # (a wrong normaliser, a lost micro-batch) moves weights by a sizeable fraction of lr everywhere.
    lr = small_config(zero_stage=stage).trainer.lr
    assert max((w0[k] - expected[k]).abs().max().item() for k in expected) <= 0.2 * lr

    # One process resumes the two-rank checkpoint through DeepSpeed's universal format: the weights come
    # back exactly, and so does Adam's state (the next update matches the process that never stopped).
    from spiral.learner.checkpoint import load_checkpoint, prepare_resume

    checkpoint = tmp_path / "run/checkpoints/step-000001"
    assert prepare_resume(checkpoint)
    resumed = Learner(small_config(zero_stage=stage), tiny_path, load_universal=True)
    assert load_checkpoint(checkpoint, resumed)["rank_count"] == 2
    restored = weights(resumed)
    assert all(torch.equal(restored[k], w0[k]) for k in w0)
    single.update(make_samples(6))
    resumed.update(make_samples(6))
    after, expected = weights(resumed), weights(single)
    # The first comparison's noise, carried one step.
    assert max((after[k] - expected[k]).abs().max().item() for k in expected) <= 0.2 * lr
