# spiral on CUDA: vLLM 0.32.0 (which brings its CUDA torch), DeepSpeed, spiral itself.
# Build:  docker build -t spiral .
# Run:    docker run --gpus all --ipc=host -v $PWD/runs:/workspace/spiral/runs spiral \
#           torchrun --nproc_per_node 8 -m spiral.cli train configs/kuhn.yaml
# The CUDA base matches that stack: vllm 0.32.0 requires torch==2.13.0, whose PyPI wheel is built for CUDA 13.0
# (it requires cuda-toolkit==13.0.3), and vLLM's own kernels are CUDA 13 builds (nvidia-cutlass-dsl[cu13];
# VLLM_MAIN_CUDA_VERSION defaults to 13.0). The host driver must support CUDA 13.0 (R580 or newer).
FROM nvidia/cuda:13.0.2-cudnn-devel-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev git \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /workspace/spiral
# vLLM pins the torch it was built against; install it first so nothing else picks torch.
RUN pip install --upgrade pip && pip install "vllm==0.32.0"
COPY pyproject.toml README.md ./
COPY spiral ./spiral
RUN pip install -e ".[gpu,eval,wandb,triton]"
COPY configs ./configs
COPY scripts ./scripts
ENTRYPOINT []
CMD ["spiral", "--help"]
