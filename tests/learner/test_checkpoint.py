"""Checkpoints: round trip of weights, optimizer and run state; atomicity under a crash; retention."""

from __future__ import annotations

import pytest
import torch

from spiral.algo import RoleBaselines, rae_advantages
from spiral.learner.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from spiral.learner.learner import Learner
from spiral.learner.safe_load import TRUST_ENV, UnsafeCheckpointError
from tests.learner.helpers import make_samples, small_config, weights


class _Unserialisable:
    """A run-state value json cannot write: makes save fail after the model files are on disk."""


def _adam_moments(learner: Learner) -> list[torch.Tensor]:
    inner = getattr(learner.ds_model.optimizer, "optimizer", learner.ds_model.optimizer)
    return [state["exp_avg"].clone() for state in inner.state.values()]


@pytest.mark.parametrize("stage", [2, 3])
def test_save_load_restores_weights_optimizer_and_state(tmp_path, tiny_path, stage):
    learner = Learner(small_config(zero_stage=stage), tiny_path)
    samples = make_samples()
    learner.update(samples)
    baselines = RoleBaselines()
    rae_advantages([("kuhn_poker", 0), ("kuhn_poker", 1)], [1.0, -1.0], baselines, decay=0.95, states=["J", "K"])
    path = save_checkpoint(tmp_path, 7, learner, {"rae": baselines.state_dict(), "pool": ["a"]})
    saved_w, saved_m, saved_lr = weights(learner), _adam_moments(learner), learner.ds_model.lr_scheduler.last_epoch
    expected_draw = torch.rand(3)  # the next draw from the saved RNG state

    learner.update(samples)  # move away from the saved state
    assert any(not torch.equal(saved_w[k], v) for k, v in weights(learner).items())

    fresh = Learner(small_config(zero_stage=stage), tiny_path)
    state = load_checkpoint(path, fresh)
    assert state["step"] == 7 and state["pool"] == ["a"]
    restored = RoleBaselines()
    restored.load_state_dict(state["rae"])
    assert restored.state_dict() == baselines.state_dict() and restored.num_states() == 2
    assert all(torch.equal(saved_w[k], v) for k, v in weights(fresh).items())
    assert all(torch.equal(a, b) for a, b in zip(saved_m, _adam_moments(fresh))) and saved_m
    assert fresh.ds_model.lr_scheduler.last_epoch == saved_lr
    assert torch.equal(torch.rand(3), expected_draw)  # RNG restored to the saved point

    # The HF directory loads with plain transformers and holds the same weights.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(path / "model", dtype=torch.float32)
    assert all(torch.equal(saved_w[k], p.detach()) for k, p in hf.named_parameters())
    assert AutoTokenizer.from_pretrained(path / "model").encode("bet") != []


def test_the_moving_kl_reference_is_saved_and_restored(tmp_path, tiny_path):
    cfg = small_config()
    cfg.algo.kl_coef, cfg.algo.magnet_ema = 0.1, 0.5
    learner = Learner(cfg, tiny_path)
    learner.update(make_samples())
    learner.move_magnet()
    path = save_checkpoint(tmp_path, 1, learner, {})
    magnet = {n: p.detach().clone() for n, p in learner.reference.causal_lm.named_parameters()}

    fresh = Learner(cfg, tiny_path)  # its reference is the initial policy until the load
    assert any(not torch.equal(magnet[n], p) for n, p in fresh.reference.causal_lm.named_parameters())
    load_checkpoint(path, fresh)
    assert all(torch.equal(magnet[n], p) for n, p in fresh.reference.causal_lm.named_parameters())

    frozen = small_config()
    frozen.algo.kl_coef = 0.1
    unmoved = save_checkpoint(tmp_path / "frozen", 1, Learner(frozen, tiny_path), {})
    with pytest.raises(CheckpointError, match="magnet_ema"):
        load_checkpoint(unmoved, Learner(cfg, tiny_path))


def test_crash_mid_save_keeps_previous_checkpoint(tmp_path, tiny_path):
    learner = Learner(small_config(), tiny_path)
    first = save_checkpoint(tmp_path, 1, learner, {"note": "good"})
    good_w = weights(learner)
    learner.update(make_samples())
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path, 2, learner, {"bad": _Unserialisable()})
    leftovers = [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers and any((p / "model").is_dir() for p in leftovers)  # the crash left partial files
    assert latest_checkpoint(tmp_path) == first

    fresh = Learner(small_config(), tiny_path)
    assert load_checkpoint(first, fresh)["note"] == "good"
    assert all(torch.equal(good_w[k], v) for k, v in weights(fresh).items())

    second = save_checkpoint(tmp_path, 2, learner, {"note": "fine"})
    assert latest_checkpoint(tmp_path) == second
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]


def test_keeps_last_n(tmp_path, tiny_path):
    cfg = small_config()
    cfg.checkpoint.keep = 2
    learner = Learner(cfg, tiny_path)
    assert latest_checkpoint(tmp_path) is None
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, learner, {})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000002", "step-000003"]


def test_lora_checkpoint_has_adapter_and_merged_model(tmp_path, tiny_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    learner = Learner(small_config(lora_r=4), tiny_path)
    learner.update(make_samples())
    path = save_checkpoint(tmp_path, 1, learner, {})
    merged = dict(learner.named_weights())
    hf = AutoModelForCausalLM.from_pretrained(path / "model", dtype=torch.float32)
    assert all(torch.equal(merged[k], p.detach()) for k, p in hf.named_parameters())
    base = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, path / "adapter").merge_and_unload()
    for k, p in adapted.named_parameters():
        torch.testing.assert_close(p.detach(), merged[k], atol=1e-6, rtol=1e-6)


class _WritesMarker:
    """Unpickling this runs code (it writes a file): what a malicious shared checkpoint would carry."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def test_resume_refuses_an_rng_file_that_runs_code(tmp_path, tiny_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    learner = Learner(small_config(), tiny_path)
    path = save_checkpoint(tmp_path, 1, learner, {})
    assert [p.name for p in (path / "rng").iterdir()] == ["rank-0.json"]  # spiral's own state is JSON
    (path / "rng" / "rank-0.json").unlink()
    marker = tmp_path / "marker"
    torch.save({"python": _WritesMarker(marker)}, path / "rng" / "rank-0.pt")
    with pytest.raises(UnsafeCheckpointError, match=f"rank-0.pt.*object .*exec.*{TRUST_ENV}=1"):
        load_checkpoint(path, learner)
    assert not marker.exists()

    (path / "rng" / "rank-0.pt").unlink()
    (path / "rng" / "rank-0.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path, learner)


def test_resume_refuses_deepspeed_state_that_runs_code(tmp_path, tiny_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    learner = Learner(small_config(), tiny_path)
    path = save_checkpoint(tmp_path, 1, learner, {})
    state_file = path / "deepspeed" / "state" / "mp_rank_00_model_states.pt"
    marker = tmp_path / "marker"
    state = torch.load(state_file, weights_only=True)
    torch.save({**state, "extra": _WritesMarker(marker)}, state_file)
    with pytest.raises(UnsafeCheckpointError, match=f"refusing to load {path / 'deepspeed'}.*object .*exec"):
        load_checkpoint(path, learner)
    assert not marker.exists()
    # The same file with the documented opt-in really runs the payload: the refusal above is what stopped it.
    monkeypatch.setenv(TRUST_ENV, "1")
    load_checkpoint(path, learner)
    assert marker.read_text() == "ran"


def test_checkpoints_from_before_the_json_rng_state_need_the_opt_in(tmp_path, tiny_path, monkeypatch):
    import random

    import numpy as np

    monkeypatch.delenv(TRUST_ENV, raising=False)
    learner = Learner(small_config(), tiny_path)
    path = save_checkpoint(tmp_path, 1, learner, {})
    (path / "rng" / "rank-0.json").unlink()
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
               path / "rng" / "rank-0.pt")  # the old format: numpy's state needs a full unpickle
    expected = torch.rand(3)
    with pytest.raises(UnsafeCheckpointError, match="numpy"):
        load_checkpoint(path, learner)
    monkeypatch.setenv(TRUST_ENV, "1")
    load_checkpoint(path, learner)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("stage", [0, 2])
def test_a_resume_with_new_optimizer_settings_applies_them(tmp_path, tiny_path, stage):
    learner = Learner(small_config(zero_stage=stage), tiny_path)  # lr 1e-3, weight decay 0
    learner.update(make_samples())
    path = save_checkpoint(tmp_path, 1, learner, {})
    fresh = Learner(small_config(zero_stage=stage, lr=2e-4, weight_decay=0.1, betas=[0.8, 0.9], adam_eps=1e-5),
                    tiny_path)
    load_checkpoint(path, fresh)  # restores the saved optimizer state, hyperparameters included
    metrics = fresh.update(make_samples())
    assert metrics["lr"] == pytest.approx(2e-4)  # the rate the update's optimizer steps used
    assert fresh.ds_model.get_lr() == [pytest.approx(2e-4)]  # and the scheduler keeps it
    group = fresh.ds_model.lr_scheduler.optimizer.param_groups[0]
    assert group["weight_decay"] == 0.1 and tuple(group["betas"]) == (0.8, 0.9) and group["eps"] == 1e-5


def test_a_full_disk_is_reported_as_such_and_keeps_the_previous_checkpoint(tmp_path, tiny_path):
    """A real full disk: a 12 MiB tmpfs in a private mount namespace (one tiny checkpoint is ~8 MiB)."""
    import json
    import shutil
    import subprocess
    import sys

    from tests.launch import clean_env

    mount = tmp_path / "small-disk"
    mount.mkdir()
    namespace = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c"]
    mount_it = f'mount -t tmpfs -o size=12m tmpfs "{mount}"'
    if shutil.which("unshare") is None or subprocess.run([*namespace, mount_it], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs in a user namespace here")
    script = f'{mount_it} && exec "{sys.executable}" -m tests.learner.full_disk_worker "{mount}"'
    proc = subprocess.run([*namespace, script], capture_output=True, text=True, timeout=600, env=clean_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["error"].startswith(f"no space left on {mount / 'checkpoints'} while writing checkpoint step 2")
    assert "step-000001 is intact" in result["error"]
    assert result["latest"].endswith("step-000001") and result["entries"] == ["step-000001"]  # partial files gone
