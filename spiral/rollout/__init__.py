"""Self-play data collection: inference engines (HF and vLLM), prompt templates and the collector.

Kept import-light: engines load torch/transformers/vLLM only when constructed
(see `engine_factory.create_engine`).
"""

from spiral.rollout.engine_factory import create_engine, create_engine_from_config

__all__ = ["create_engine", "create_engine_from_config"]
