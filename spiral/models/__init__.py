"""Policy models: the built-in tiny models and resolution of `model.path` values."""

from spiral.models.builtin import BUILTIN_PREFIX, resolve_model_path

__all__ = ["BUILTIN_PREFIX", "resolve_model_path"]
