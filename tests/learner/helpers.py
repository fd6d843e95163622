"""Helpers for learner tests: a small config, hand-made turn samples, a copy of the weights."""

from __future__ import annotations

import os
import random

import torch

os.environ.setdefault("DS_ACCELERATOR", "cpu" if not torch.cuda.is_available() else "cuda")

from spiral.config.schema import SpiralConfig  # noqa: E402
from spiral.types import TurnSample  # noqa: E402


def small_config(zero_stage: int = 0, lora_r: int = 0, **trainer) -> SpiralConfig:
    cfg = SpiralConfig()
    cfg.trainer.zero_stage = zero_stage
    cfg.trainer.lr = 1e-3
    cfg.trainer.micro_batch_size = 2
    cfg.rollout.max_tokens = 16
    cfg.model.lora.r = lora_r
    for key, value in trainer.items():
        setattr(cfg.trainer, key, value)
    return cfg


def make_samples(n: int = 6, seed: int = 0, vocab: int = 500) -> list[TurnSample]:
    """Prompts that open with the same 20 "rules" tokens, as game prompts do (so the learner shares that
    prefix), then random tokens; completions of varied lengths; alternating +1/−1 advantages."""
    rng = random.Random(seed)
    rules = [rng.randrange(vocab) for _ in range(20)]
    return [
        TurnSample(game="kuhn_poker", seat=i % 2, prompt_ids=rules + [rng.randrange(vocab) for _ in range(4 + i)],
                   completion_ids=[rng.randrange(vocab) for _ in range(2 + i % 3)], logprobs=[], ret=1.0,
                   advantage=1.0 if i % 2 == 0 else -1.0)
        for i in range(n)
    ]


def weights(learner) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone().cpu() for name, t in learner.named_weights()}
