"""Run by test_checkpoint.py inside a private 12 MiB tmpfs: save two checkpoints, where only one fits."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from spiral.learner.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from spiral.learner.learner import Learner
from spiral.models import resolve_model_path
from tests.learner.helpers import make_samples, small_config

run_dir = Path(sys.argv[1])
cfg = small_config()
cfg.checkpoint.keep = 1
learner = Learner(cfg, resolve_model_path("builtin:tiny"))
first = save_checkpoint(run_dir, 1, learner, {})
learner.update(make_samples())
try:
    save_checkpoint(run_dir, 2, learner, {})
    error = None
except CheckpointError as err:
    error = str(err)
load_checkpoint(first, Learner(cfg, resolve_model_path("builtin:tiny")))  # the previous one still loads
print(json.dumps({"error": error, "latest": str(latest_checkpoint(run_dir)),
                  "entries": sorted(p.name for p in (run_dir / "checkpoints").iterdir())}))
