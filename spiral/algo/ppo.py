"""The PPO-clip policy loss on padded [batch, tokens] tensors, with an optional k3 KL to a reference.

Pure tensor code: no model, no optimizer, no torch.distributed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spiral.choices import LOSS_AGGS


def ppo_loss(
    new_logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_eps: float,
    loss_agg: str,
    norm_constant: float = 1.0,
    ref_logprobs: Tensor | None = None,
    kl_coef: float = 0.0,
    kl_values: Tensor | None = None,
    entropy: Tensor | None = None,
    entropy_coef: float = 0.0,
    num_sequences: float | None = None,
    num_tokens: float | None = None,
    is_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO-clip loss and detached statistics.

    Shapes: log-probs and `mask` are [B, T] (mask true on the completion tokens being scored);
    `advantages` is [B] (one per sequence) or [B, T].

    Per token: max(−A·r, −A·clip(r, 1−ε, 1+ε)) with r = exp(new − old), plus `kl_coef`·k3 where
    k3 = exp(ref − new) − (ref − new) − 1 when `kl_coef` > 0 (or `kl_values`, [B, T], differentiable: a KL to
    the reference already computed at each learning token, e.g. exactly over the legal moves), minus `entropy_coef`·`entropy` (the
    policy's entropy at that token, [B, T]) when `entropy_coef` > 0. Aggregation over the masked tokens:
    - `seq_sum_norm` (the paper): the sum of all token losses / (num_sequences · norm_constant), i.e.
      each sequence's summed token loss divided by the generation budget, averaged over sequences;
      longer answers therefore carry proportionally more weight than under a per-sequence mean.
    - `token_mean`: the sum of all token losses / num_tokens.
    `num_sequences` / `num_tokens` default to this batch's counts; a caller that accumulates gradients
    over micro-batches passes the whole minibatch's counts so the micro losses add up to its loss.
    `is_weights` ([B, T], no gradient) multiply each token's clipped policy term: the truncated importance
    weights min(π_learner / π_engine, cap) that correct for the engine sampling from a slightly different
    distribution than the learner scores (`algo.tis_cap`).
    Masked-out positions never contribute, even when they hold non-finite values.
    """
    if loss_agg not in LOSS_AGGS:
        raise ValueError(f"loss_agg must be one of {LOSS_AGGS}, got {loss_agg!r}")
    if new_logprobs.shape != old_logprobs.shape or new_logprobs.shape != mask.shape:
        raise ValueError(
            f"new_logprobs {tuple(new_logprobs.shape)}, old_logprobs {tuple(old_logprobs.shape)} and mask "
            f"{tuple(mask.shape)} must have one shape"
        )
    if kl_coef > 0 and ref_logprobs is None and kl_values is None:
        raise ValueError("kl_coef > 0 needs ref_logprobs or kl_values")
    if kl_values is not None and kl_values.shape != mask.shape:
        raise ValueError(f"kl_values {tuple(kl_values.shape)} must have the mask's shape {tuple(mask.shape)}")
    if entropy_coef > 0 and (entropy is None or entropy.shape != mask.shape):
        raise ValueError(f"entropy_coef > 0 needs an entropy tensor of the mask's shape {tuple(mask.shape)}")
    mask = mask.bool()
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    advantages = advantages.to(new_logprobs.dtype)

    log_ratio = torch.where(mask, new_logprobs - old_logprobs, 0.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    token_loss = torch.maximum(unclipped, clipped)
    if is_weights is not None:
        if is_weights.shape != mask.shape:
            raise ValueError(f"is_weights {tuple(is_weights.shape)} must have the mask's shape {tuple(mask.shape)}")
        token_loss = token_loss * torch.where(mask, is_weights.detach().to(token_loss.dtype), 0.0)
    kl_ref = None
    if kl_coef > 0:
        if kl_values is not None:
            kl_ref = torch.where(mask, kl_values.to(token_loss.dtype), 0.0)
        else:
            ref_diff = torch.where(mask, ref_logprobs - new_logprobs, 0.0)
            kl_ref = torch.exp(ref_diff) - ref_diff - 1.0
        token_loss = token_loss + kl_coef * kl_ref
    if entropy_coef > 0 and entropy is not None:  # (None was refused above)
        token_loss = token_loss - entropy_coef * torch.where(mask, entropy.to(token_loss.dtype), 0.0)
    token_loss = torch.where(mask, token_loss, 0.0)

    n_tokens = mask.sum()
    if loss_agg == "seq_sum_norm":
        if norm_constant <= 0:
            raise ValueError(f"norm_constant must be positive for seq_sum_norm, got {norm_constant}")
        denom = (num_sequences if num_sequences is not None else mask.shape[0]) * norm_constant
    else:
        denom = num_tokens if num_tokens is not None else n_tokens.clamp(min=1)
    loss = token_loss.sum() / denom

    with torch.no_grad():
        valid = n_tokens.clamp(min=1)
        stats = {
            # Tokens where the clipped branch is the active one (it has zero gradient there).
            "clip_fraction": ((clipped > unclipped) & mask).sum() / valid,
            # k3 estimate of KL(old ‖ new) over the scored tokens.
            "approx_kl": torch.where(mask, ratio - 1.0 - log_ratio, 0.0).sum() / valid,
            "ratio_mean": torch.where(mask, ratio, 0.0).sum() / valid,
            "ratio_max": torch.where(mask, ratio, 0.0).max() if mask.any() else ratio.new_tensor(1.0),
            "tokens": n_tokens.to(ratio.dtype),
        }
        if kl_ref is not None:
            stats["kl_ref"] = torch.where(mask, kl_ref, 0.0).sum() / valid
    return loss, stats
