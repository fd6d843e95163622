"""The run directory tells the truth: one run at a time, and a resume that continues exactly what is there.

- `locked_run_dir`: a `spiral train` holds an exclusive lock on `run.dir/.lock` (fcntl) while it runs,
  so a second one on the same directory refuses to start; the kernel drops the lock when the process
  ends, however it ends, so a lock left by a dead run never blocks.
- `resume_point`: which checkpoint to resume from, refusing a config that differs from the one the
  checkpoint was saved with (unless `run.allow_config_change`), saying when `trainer.steps` is already
  reached, and moving checkpoints later than an explicitly chosen one aside (`abandoned-<time>/`), so
  that `run.resume: auto` can never jump back to an abandoned timeline.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from spiral.config.schema import ConfigError, SpiralConfig
from spiral.errors import SpiralError

LOCK_FILE = ".lock"
# Keys that only say where a run writes or logs: they may differ on resume.
_BOOKKEEPING = ("run.dir", "run.resume", "run.name", "run.allow_config_change", "logging.")
# Keys the checkpoint's weights and optimizer state depend on: they can never change on resume.
_FIXED = ("model.path", "model.dtype", "model.lora.", "trainer.zero_stage")


class RunDirBusy(SpiralError):
    """Another `spiral train` holds the run directory."""


class RunFinished(SpiralError):
    """The checkpoint to resume from already reached `trainer.steps`: nothing to train (not a failure)."""

    exit_code = 0


@contextmanager
def locked_run_dir(run_dir: str | Path) -> Iterator[None]:
    """Hold `run_dir`'s lock for the duration (only global rank 0 locks; the other ranks share its run)."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise RunDirBusy(f"{run_dir} is in use by another spiral train ({holder}); wait for it to finish, "
                             "or choose another run.dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
        if created and [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:  # refused before writing anything
            shutil.rmtree(run_dir, ignore_errors=True)


def resume_point(cfg: SpiralConfig, run_dir: Path, is_main: bool = True) -> Path | None:
    """The checkpoint this run resumes from (None: a fresh start), after the checks in the module docstring.
    Call on every rank; only `is_main` moves files."""
    from spiral.learner.checkpoint import checkpoint_step, latest_checkpoint

    mode = cfg.run.resume
    if mode == "never":
        if latest_checkpoint(run_dir) is not None:
            raise ConfigError(f"run.resume=never but {run_dir} already holds checkpoints; "
                              "choose another run.dir or use run.resume=auto")
        return None
    path = latest_checkpoint(run_dir) if mode == "auto" else Path(mode)
    if path is None:
        return None
    if not (path / "state.json").is_file():
        latest = latest_checkpoint(path)
        hint = f"; did you mean {latest}?" if latest else "; pass a checkpoints/step-N folder"
        raise ConfigError(f"run.resume: {path} is not a complete spiral checkpoint (no state.json){hint}")
    step = checkpoint_step(path)
    _check_config_change(cfg, path, step)
    if step >= cfg.trainer.steps:
        raise RunFinished(
            f"{path} is step {step} and trainer.steps is {cfg.trainer.steps}: nothing left to train. To continue "
            f"this run, raise trainer.steps (e.g. trainer.steps={step + cfg.trainer.steps}) "
            "with run.allow_config_change=true"
        )
    if mode != "auto" and is_main:
        _set_aside_later_checkpoints(run_dir, step)
    return path


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}{key}."))
    return out if out else {prefix: tree}


def config_changes(saved: dict[str, Any], cfg: SpiralConfig) -> list[tuple[str, Any, Any]]:
    """(key, saved value, current value) for every training setting that differs; a key the saved config
    lacks (written by an older spiral) counts as its default."""
    defaults = _flatten(asdict(SpiralConfig()))
    old, new = _flatten(saved), _flatten(asdict(cfg))
    missing = object()
    changes = []
    for key in sorted(old.keys() | new.keys()):
        name = key.rstrip(".")
        if name.startswith(_BOOKKEEPING):
            continue
        before, after = old.get(key, defaults.get(key, missing)), new.get(key, missing)
        if before != after:
            changes.append((name, "(none)" if before is missing else before, "(removed)" if after is missing else after))
    return changes


def _check_config_change(cfg: SpiralConfig, path: Path, step: int) -> None:
    saved_file = path / "config.yaml"
    if not saved_file.is_file():
        print(f"spiral train: {path} holds no config.yaml; cannot check that this config matches it", file=sys.stderr)
        return
    changes = config_changes(OmegaConf.to_container(OmegaConf.load(saved_file)), cfg)
    if not changes:
        return
    listed = "; ".join(f"{key}: {before!r} -> {after!r}" for key, before, after in changes)
    fixed = [key for key, _, _ in changes if key.startswith(_FIXED)]
    if fixed:
        raise ConfigError(f"{', '.join(fixed)} cannot change when resuming {path} (the saved weights and optimizer "
                          f"state depend on them); changes: {listed}. Start a new run.dir for a different model")
    if not cfg.run.allow_config_change:
        raise ConfigError(f"resuming {path} with a config that differs from the one it was saved with: {listed}. "
                          "Set run.allow_config_change=true to resume with these changes (they apply from step "
                          f"{step + 1}), or resume with {saved_file}")
    print(f"spiral train: resuming {path} with config changes: {listed}", file=sys.stderr)


def _set_aside_later_checkpoints(run_dir: Path, step: int) -> None:
    """Move checkpoints after `step` (and a copy of metrics.jsonl) to `run_dir/abandoned-<time>/`."""
    from spiral.learner.checkpoint import checkpoint_step, list_checkpoints

    later = [p for p in list_checkpoints(run_dir) if checkpoint_step(p) > step]
    if not later:
        return
    target = run_dir / f"abandoned-{time.strftime('%Y%m%d-%H%M%S')}"
    suffix = 1
    while target.exists():
        target = run_dir / f"abandoned-{time.strftime('%Y%m%d-%H%M%S')}-{suffix}"
        suffix += 1
    target.mkdir()
    if (run_dir / "metrics.jsonl").is_file():
        shutil.copy2(run_dir / "metrics.jsonl", target / "metrics.jsonl")
    for path in later:
        path.rename(target / path.name)
    print(f"spiral train: resuming from step {step}; moved the later checkpoints "
          f"({', '.join(p.name for p in later)}) to {target}", file=sys.stderr)
