"""The run directory: one `spiral train` at a time, resume checks against the saved config, rewinds.

Checkpoints here are the files `resume_point` reads (state.json and config.yaml); no model is trained.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spiral.cli import main
from spiral.config import ConfigError, load_config, to_yaml
from spiral.learner.checkpoint import latest_checkpoint
from spiral.rundir import RunDirBusy, RunFinished, locked_run_dir, resume_point
from tests.launch import clean_env

TINY = Path(__file__).parents[2] / "configs" / "kuhn_tiny.yaml"


def _config(run_dir: Path, *overrides: str):
    return load_config(TINY, [f"run.dir={run_dir}", "trainer.steps=10", *overrides])


def _fake_checkpoints(run_dir: Path, steps: list[int], *overrides: str) -> None:
    cfg = _config(run_dir, *overrides)
    for step in steps:
        folder = run_dir / "checkpoints" / f"step-{step:06d}"
        folder.mkdir(parents=True)
        (folder / "state.json").write_text(json.dumps({"step": step, "learner": {"updates": step}, "state": {}}))
        (folder / "config.yaml").write_text(to_yaml(cfg))


def test_a_second_train_on_a_busy_run_dir_refuses(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    code = ("import sys, time\nfrom spiral.rundir import locked_run_dir\n"
            "with locked_run_dir(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, env=clean_env())
    try:
        assert holder.stdout.readline() == b"locked\n"
        assert main(["train", str(TINY), f"run.dir={run_dir}"]) == 2
        err = capsys.readouterr().err
        assert f"{run_dir} is in use by another spiral train (pid {holder.pid}" in err, err
        with pytest.raises(RunDirBusy):
            with locked_run_dir(run_dir):
                pass
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the lock file stays behind
        holder.wait()
    assert (run_dir / ".lock").exists()
    with locked_run_dir(run_dir):  # a dead holder's lock does not block
        pass


def test_auto_resumes_the_latest_and_a_finished_run_says_so(tmp_path) -> None:
    run_dir = tmp_path / "run"
    assert resume_point(_config(run_dir), run_dir) is None
    _fake_checkpoints(run_dir, [5, 10])
    with pytest.raises(RunFinished, match="step 10 and trainer.steps is 10: nothing left to train"):
        resume_point(_config(run_dir), run_dir)
    _fake_checkpoints(tmp_path / "other", [5])
    assert resume_point(_config(tmp_path / "other"), tmp_path / "other").name == "step-000005"


def test_a_changed_config_is_listed_and_refused_unless_allowed(tmp_path) -> None:
    run_dir = tmp_path / "run"
    _fake_checkpoints(run_dir, [5])
    changed = _config(run_dir, "trainer.lr=5e-4", "rollout.temperature=0.8", "logging.console=false")
    with pytest.raises(ConfigError) as err:
        resume_point(changed, run_dir)
    message = str(err.value)
    assert "trainer.lr: 0.0001 -> 0.0005" in message and "rollout.temperature: 1.0 -> 0.8" in message
    assert "logging" not in message and "run.allow_config_change=true" in message
    allowed = _config(run_dir, "trainer.lr=5e-4", "rollout.temperature=0.8", "run.allow_config_change=true")
    assert resume_point(allowed, run_dir).name == "step-000005"
    # The model and what its saved state depends on cannot change, allowed or not.
    other_model = _config(run_dir, "model.path=builtin:small", "run.allow_config_change=true")
    with pytest.raises(ConfigError, match="model.path cannot change when resuming"):
        resume_point(other_model, run_dir)


def test_rewinding_moves_later_checkpoints_aside(tmp_path) -> None:
    run_dir = tmp_path / "run"
    _fake_checkpoints(run_dir, [2, 4, 6])
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"step": s}) + "\n" for s in range(7)))
    older = run_dir / "checkpoints" / "step-000002"
    assert resume_point(_config(run_dir, f"run.resume={older}"), run_dir) == older
    assert latest_checkpoint(run_dir) == older  # resume: auto can no longer jump to step 6
    [aside] = run_dir.glob("abandoned-*")
    assert sorted(p.name for p in aside.iterdir()) == ["metrics.jsonl", "step-000004", "step-000006"]
    assert resume_point(_config(run_dir), run_dir) == older


def test_resume_from_a_folder_that_is_not_a_checkpoint_is_refused(tmp_path) -> None:
    run_dir = tmp_path / "run"
    _fake_checkpoints(run_dir, [3])
    with pytest.raises(ConfigError, match=f"command line \\(run.resume={run_dir}\\): run.resume: .*no state.json"):
        _config(tmp_path / "new", f"run.resume={run_dir}")
    cfg = _config(tmp_path / "new")
    cfg.run.resume = str(run_dir)  # as a program calling train() directly might
    with pytest.raises(ConfigError, match=f"did you mean {run_dir / 'checkpoints' / 'step-000003'}"):
        resume_point(cfg, tmp_path / "new")


def test_a_run_refused_before_writing_leaves_no_run_dir(tmp_path) -> None:
    fresh, existing = tmp_path / "fresh", tmp_path / "existing"
    existing.mkdir()
    for run_dir in (fresh, existing):
        with pytest.raises(ConfigError):
            with locked_run_dir(run_dir):
                raise ConfigError("resume refused")
    assert not fresh.exists() and existing.is_dir()
