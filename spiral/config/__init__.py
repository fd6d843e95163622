"""Typed configs (`schema`) and the YAML + override loader (`loader`)."""

from spiral.config.loader import load_config, to_yaml
from spiral.config.schema import ConfigError, SpiralConfig

__all__ = ["ConfigError", "SpiralConfig", "load_config", "to_yaml"]
