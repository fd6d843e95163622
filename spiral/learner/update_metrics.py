"""The running totals of one PPO update and the metrics they become, averaged over ranks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor

from spiral.learner import distributed as dist_utils


@dataclass
class StepStats:
    """Sums over this rank's micro-batches of one optimizer step. The token-level statistics (clip fraction,
    approximate KL, ratio, reference KL) are weighted by `tokens`, the learning tokens they were taken over."""

    loss: float = 0.0
    tokens: float = 0.0
    clip_fraction: float = 0.0
    approx_kl: float = 0.0
    ratio_mean: float = 0.0
    kl_ref: float = 0.0
    entropy: float = 0.0  # over the vocabulary, summed over every scored token
    entropy_tokens: float = 0.0
    move_entropy: float = 0.0  # over the legal moves, summed over the choice samples
    choice_samples: float = 0.0

    def add(self, other: StepStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class RunningTotals:
    """One update's optimizer steps: how many ran, how many were skipped, and the applied ones' stats."""

    sums: StepStats = field(default_factory=StepStats)
    steps: int = 0
    skipped: int = 0
    grad_norms: list[float] = field(default_factory=list)

    def record(self, stats: StepStats, applied: bool, grad_norm: float | None) -> None:
        """Count one optimizer step; a skipped step's stats describe no update, so they stay out."""
        self.steps += 1
        if not applied:
            self.skipped += 1
            return
        self.sums.add(stats)
        if grad_norm is not None:
            self.grad_norms.append(grad_norm)

    def metrics(self, lr: float, kl_ref: bool) -> dict[str, float]:
        """The update's metrics over every rank's samples (`kl_ref`: report the KL to the reference)."""
        names = [f.name for f in fields(StepStats)]
        total = dict(zip(names, dist_utils.all_reduce_sum([getattr(self.sums, name) for name in names])))
        # No applied step: nothing to average (NaN, logged as null) rather than a misleading 0.
        tokens, entropy_tokens = (total["tokens"], total["entropy_tokens"]) if total["tokens"] > 0 else (math.nan,
                                                                                                        math.nan)
        applied = self.steps - self.skipped
        metrics = {
            "policy_loss": total["loss"] / applied if applied > 0 else math.nan,
            "clip_fraction": total["clip_fraction"] / tokens,
            "approx_kl": total["approx_kl"] / tokens,
            "ratio_mean": total["ratio_mean"] / tokens,
            "entropy": total["entropy"] / entropy_tokens,
            "grad_norm": sum(self.grad_norms) / len(self.grad_norms) if self.grad_norms else math.nan,
            "lr": lr,
            "skipped": float(self.skipped),
            "optimizer_steps": float(applied),
        }
        if kl_ref:
            metrics["kl_ref"] = total["kl_ref"] / tokens
        if total["choice_samples"] > 0:  # the entropy that matters when moves are chosen among the legal ones
            metrics["move_entropy"] = total["move_entropy"] / total["choice_samples"]
        return metrics


def mismatch_metrics(learner_lp: Sequence[Tensor], engine_lp: Sequence[Tensor | None]) -> dict[str, float]:
    """How far the inference engine's log-probs of the sampled tokens are from the learner's, over all ranks:
    `mismatch_kl`, the k3 estimate of KL(engine ‖ learner) per token (the tokens were sampled by the engine),
    and `mismatch_max_abs`, the largest |learner − engine| log-prob of any token."""
    pairs = [(l, e) for l, e in zip(learner_lp, engine_lp) if e is not None]
    diff = torch.cat([l - e for l, e in pairs]) if pairs else torch.zeros(0)
    k3 = diff.exp() - diff - 1.0
    count, total = dist_utils.all_reduce_sum([float(diff.numel()), float(k3.sum())])
    (largest,) = dist_utils.all_reduce_max([float(diff.abs().max()) if diff.numel() else 0.0])
    if count == 0:
        return {}
    return {"mismatch_kl": total / count, "mismatch_max_abs": largest}
