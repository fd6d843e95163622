#!/usr/bin/env bash
# Single-node launcher: one rank per visible GPU, each with its own colocated inference engine.
#   scripts/launch_node.sh configs/kuhn.yaml [key=value ...]
# Multi-node runs call this on every node with NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT set
# (scripts/slurm_train.sbatch does that).
set -euo pipefail
NGPUS=${NGPUS:-$(nvidia-smi -L | wc -l)}
exec torchrun \
  --nnodes "${NNODES:-1}" --node_rank "${NODE_RANK:-0}" --nproc_per_node "$NGPUS" \
  --rdzv_backend c10d --rdzv_endpoint "${MASTER_ADDR:-127.0.0.1}:${MASTER_PORT:-29500}" \
  --rdzv_id "${RDZV_ID:-spiral}" \
  -m spiral.cli train "$@"
