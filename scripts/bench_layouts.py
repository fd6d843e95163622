"""Samples per second of the dedicated layout (1 learner + 1 actor, `rollout.max_staleness: 1`) against the
colocated layout (2 ranks, each playing and training), on the same cores: two processes each, one thread each.

Both train `configs/kuhn_tiny.yaml` on the built-in tiny model for `--steps` steps (evaluation off) and are
timed over their steady state: samples over the summed `time/step` of every step but the first. Last line:
`RESULT async_speedup=<dedicated samples/s ÷ colocated samples/s>`.

    python scripts/bench_layouts.py [--steps 6] [--samples 64] [--max-tokens 12] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from spiral.learner.distributed import free_port

REPO = Path(__file__).resolve().parents[1]


def run(layout: str, run_dir: Path, args: argparse.Namespace) -> float:
    """Steady-state samples per second of one two-process run."""
    overrides = [f"run.dir={run_dir}", f"trainer.steps={args.steps}", "eval.every=0", "checkpoint.every=0",
                 f"rollout.samples_per_step={args.samples}", f"rollout.concurrent_games={args.samples}",
                 f"rollout.max_tokens={args.max_tokens}", f"algo.epochs={args.epochs}", "rollout.transcripts_every=0",
                 f"trainer.layout={layout}", "logging.console=false"]
    if layout == "dedicated":
        overrides += ["trainer.actor_ranks=1", "rollout.max_staleness=1"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "spiral.cli", "train", str(REPO / "configs/kuhn_tiny.yaml"), *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, env=env, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    steady = [r for r in rows if r["step"] > 1]
    seconds = sum(r["time/step"] for r in steady)
    samples = sum(r["rollout/samples"] for r in steady)
    print(f"{layout}: {samples:.0f} samples in {seconds:.1f} s over steps 2-{args.steps} "
          f"({samples / seconds:.2f} samples/s); per step: " +
          ", ".join(f"{k}={sum(r.get(k, 0.0) for r in steady) / len(steady):.2f}s"
                    for k in ("time/rollout", "time/update", "time/learner_idle", "time/actor_idle") if k in steady[0]),
          flush=True)
    return samples / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--samples", type=int, default=64, help="rollout.samples_per_step")
    parser.add_argument("--max-tokens", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is warm-up and not timed)")
    with tempfile.TemporaryDirectory() as tmp:
        colocated = run("colocated", Path(tmp) / "colocated", args)
        dedicated = run("dedicated", Path(tmp) / "dedicated", args)
    print(f"RESULT async_speedup={dedicated / colocated:.3f}")


if __name__ == "__main__":
    main()
