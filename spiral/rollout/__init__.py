"""Self-play data collection: inference engines (HF and vLLM), prompt templates and the collector.

Kept import-light: engines load torch/transformers/vLLM only when constructed (see `engines.create_engine`).
"""

from spiral.rollout.engines import create_engine, create_engine_from_config

__all__ = ["create_engine", "create_engine_from_config"]
