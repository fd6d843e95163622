"""spiral: self-play reinforcement learning on zero-sum text games for language-model reasoning."""

__version__ = "0.1.0"
