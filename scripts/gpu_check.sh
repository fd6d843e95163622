#!/usr/bin/env bash
# The GPU check, one command: what a GPU user (or a lent GPU machine) runs to see spiral's CUDA paths work and to
# take their figures. Each step logs to OUT_DIR/<step>.log; one summary table at the end; the exit status is
# non-zero when any step failed. Without a CUDA device it says so and skips every step.
#   scripts/gpu_check.sh [OUT_DIR]            (default /tmp/spiral-gpu-check; PYTHON picks the interpreter)
#
#   cuda-tests      python -m pytest -m cuda (kernels, cascade attention, the HF engine; with vLLM also its real
#                   sleep mode: sleep -> load weights -> generate with exact log-probs, beside a secondary engine)
#   bench-logprobs  scripts/bench_logprobs.py at 8,192 tokens, hidden 2560 (ours, naive, and TRL's and Liger's own
#                   code where importable; PEERS=DIR puts a directory on PYTHONPATH for this step only, e.g. one filled
#                   elsewhere by pip install --target DIR --no-deps trl==1.16.0 liger-kernel==0.8.5 and carried over)
#   bench-rollout   scripts/bench_rollout.py --engine hf
#   train-hf        3 steps of configs/kuhn.yaml scaled to one GPU (builtin:qwen3-0.6b-shape, random weights), HF engine
#   and where vLLM is importable:
#   vllm-tests      python -m pytest -m vllm tests/rollout
#   train-vllm      the same 3 steps with rollout.engine=vllm (sleep between phases), evaluating at the last step
#                   against a model opponent (a second, secondary engine)
#   bench-rollout-vllm  scripts/bench_rollout.py --engine vllm
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/spiral-gpu-check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
STEPS=(cuda-tests bench-logprobs bench-rollout train-hf vllm-tests train-vllm bench-rollout-vllm)
declare -A STATUS SECONDS_TAKEN RESULT
FAILED=0

# configs/kuhn.yaml on one GPU: a random model of Qwen3-0.6B's shape (LM head padded to 151,936), 128 samples of
# 64 concurrent games, 256-token turns, 3 steps.
TRAIN=(configs/kuhn.yaml run.resume=never model.path=builtin:qwen3-0.6b-shape model.max_model_len=2048
       rollout.max_tokens=256 rollout.concurrent_games=64 rollout.samples_per_step=128 trainer.steps=3
       trainer.micro_batch_size=8 eval.every=0 logging.wandb=false checkpoint.every=0)
EVAL_AT_END=(eval.every=3 "eval.games=[kuhn_poker]" "eval.opponents=[random,builtin:tiny]" eval.episodes=4
             eval.exploitability=false "eval.benchmarks=[]" eval.max_tokens=256)

run_step() {  # run_step NAME TIMEOUT_S COMMAND...: run it, log it, record status, time and a one-line result
    local name=$1 limit=$2; shift 2
    local log="$OUT/$name.log" start=$SECONDS
    echo "== $name: $*" | tee "$log"
    timeout "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    SECONDS_TAKEN[$name]=$((SECONDS - start))
    if [ $rc -eq 0 ]; then STATUS[$name]=ok; else STATUS[$name]="FAIL rc=$rc"; FAILED=1; fi
    RESULT[$name]=$(summarise "$name" "$log")
    echo "   ${STATUS[$name]} in ${SECONDS_TAKEN[$name]} s: ${RESULT[$name]}"
}

summarise() {  # the line of a step's log worth a table cell
    local name=$1 log=$2
    case $name in
        *tests) grep -E "[0-9]+ (passed|failed|errors?|skipped)|no tests ran" "$log" | tail -1 | tr -d '=' | sed 's/^ *//' ;;
        bench-*) grep -E "^RESULT" "$log" | tail -1 | cut -c8- ;;
        train-*) "$PY" - "$OUT/$name/metrics.jsonl" <<'PY' 2>/dev/null || echo "no metrics"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
last = [r for r in rows if "time/step" in r][-1]
keys = ("time/step", "time/rollout", "time/update", "time/sync", "perf/rollout_tokens_per_s", "perf/peak_memory_gb")
print(f"step {last['step']}: " + ", ".join(f"{k.split('/')[1]}={last[k]:.3g}" for k in keys if k in last)
      + "".join(f", eval vs builtin:tiny: {last[k]:.0f} games" for k in last if k.endswith("builtin:tiny/games")))
PY
        ;;
    esac
}

skip() { STATUS[$1]="skipped"; SECONDS_TAKEN[$1]=0; RESULT[$1]=$2; }

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False); every step needs one and is skipped"
    for step in "${STEPS[@]}"; do skip "$step" "no CUDA device"; done
else
    "$PY" -c "import torch; print('gpu_check:', torch.cuda.get_device_name(), 'torch', torch.__version__, 'CUDA', torch.version.cuda)"
    run_step cuda-tests 900 "$PY" -m pytest -m cuda -q -p no:cacheprovider
    run_step bench-logprobs 600 env PYTHONPATH="${PEERS:+$PEERS:}${PYTHONPATH:-}" \
        "$PY" scripts/bench_logprobs.py --tokens 8192 --hidden 2560 --vocab 151936
    run_step bench-rollout 600 "$PY" scripts/bench_rollout.py --engine hf
    rm -rf "$OUT/train-hf" "$OUT/train-vllm"  # run.resume=never refuses a directory with checkpoints
    run_step train-hf 900 "$PY" -m spiral.cli train "${TRAIN[@]}" rollout.engine=hf run.dir="$OUT/train-hf"
    if "$PY" -c "import vllm" 2>/dev/null; then
        run_step vllm-tests 900 "$PY" -m pytest -m vllm tests/rollout -q -p no:cacheprovider
        run_step train-vllm 900 "$PY" -m spiral.cli train "${TRAIN[@]}" "${EVAL_AT_END[@]}" rollout.engine=vllm \
            run.dir="$OUT/train-vllm"
        run_step bench-rollout-vllm 600 "$PY" scripts/bench_rollout.py --engine vllm
    else
        for step in vllm-tests train-vllm bench-rollout-vllm; do skip "$step" "vLLM is not importable"; done
    fi
fi

echo
printf '%-20s %-12s %8s  %s\n' step status seconds result
for step in "${STEPS[@]}"; do
    printf '%-20s %-12s %8s  %s\n' "$step" "${STATUS[$step]}" "${SECONDS_TAKEN[$step]}" "${RESULT[$step]}"
done
echo "logs: $OUT"
exit $FAILED
