#!/usr/bin/env bash
# A few steps of configs/kuhn.yaml scaled to one GPU with a random model of Qwen3-0.6B's shape
# (no download): prints time per phase, tokens/s and peak memory from metrics.jsonl.
#   scripts/gpu_smoke.sh [run_dir] [key=value ...]
set -euo pipefail
RUN_DIR=${1:-/tmp/spiral-gpu-smoke}; shift || true
python3 -m spiral.cli train configs/kuhn.yaml run.dir="$RUN_DIR" run.resume=never \
  model.path=builtin:qwen3-0.6b-shape model.max_model_len=2048 rollout.engine="${ENGINE:-hf}" \
  rollout.max_tokens=256 rollout.concurrent_games=64 rollout.samples_per_step=128 trainer.steps=3 \
  trainer.micro_batch_size=8 eval.every=0 logging.wandb=false checkpoint.every=0 "$@"
python3 - "$RUN_DIR/metrics.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    row = json.loads(line)
    keys = [k for k in sorted(row) if k.startswith(("time/", "perf/")) or k in ("rollout/samples", "rollout/tokens")]
    print(f"step {row['step']}: " + ", ".join(f"{k}={row[k]:.3g}" for k in keys))
PY
