# spiral on CUDA: vLLM (which brings its CUDA torch), DeepSpeed, flash-attention, spiral itself.
# Build:  docker build -t spiral .
# Run:    docker run --gpus all --ipc=host -v $PWD/runs:/workspace/spiral/runs spiral \
#           torchrun --nproc_per_node 8 -m spiral.cli train configs/kuhn.yaml
FROM nvidia/cuda:12.8.1-cudnn-devel-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev git \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /workspace/spiral
# vLLM pins the torch it was built against; install it first so nothing else picks torch.
RUN pip install --upgrade pip && pip install "vllm>=0.10"
COPY pyproject.toml README.md ./
COPY spiral ./spiral
RUN pip install -e ".[eval,wandb,triton]" \
    && (pip install flash-attn --no-build-isolation || echo "flash-attn unavailable for this torch; continuing with SDPA")
COPY configs ./configs
COPY scripts ./scripts
ENTRYPOINT []
CMD ["spiral", "--help"]
