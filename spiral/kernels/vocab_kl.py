"""`vocab_kl`: the exact KL(π ‖ ref) over the whole vocabulary at each scored token, a chunk of tokens at a time.

The k3 estimate sees only the sampled token, so probability that leaks to tokens the policy rarely samples (a
format token's neighbour, a move word that is illegal here) is penalised only on the rare steps that sample it.
The exact KL sees every token. Like `token_logprobs` it never holds the full [tokens, vocab] logits: each chunk's
two logit blocks are built, reduced to one value per token and dropped, and recomputed in the backward
(activation checkpointing per chunk), so about four fp32 [chunk, vocab] blocks are alive at once. It runs in
torch on every device.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from spiral.kernels.torch_chunked import scaled_fp32_logits


def _log_softmax(hidden: Tensor, weight: Tensor, bias: Tensor | None, temperature: float) -> Tensor:
    return torch.log_softmax(scaled_fp32_logits(hidden @ weight.t(), bias, temperature), dim=-1)


def _chunk_kl(hidden: Tensor, weight: Tensor, bias: Tensor | None, ref_hidden: Tensor, ref_weight: Tensor,
              ref_bias: Tensor | None, temperature: float) -> Tensor:
    log_p = _log_softmax(hidden, weight, bias, temperature)
    with torch.no_grad():
        log_q = _log_softmax(ref_hidden, ref_weight, ref_bias, temperature)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def vocab_kl(hidden: Tensor, weight: Tensor, ref_hidden: Tensor, ref_weight: Tensor, *, bias: Tensor | None = None,
             ref_bias: Tensor | None = None, temperature: float = 1.0, chunk_size: int = 1024) -> Tensor:
    """[T] fp32 KL(π ‖ ref) at each of T tokens, π = softmax((hidden @ weight.T + bias) / temperature) and ref the
    same from the reference's `ref_hidden`, `ref_weight`, `ref_bias` (held fixed: no gradient flows into them).
    Differentiable w.r.t. hidden, weight and bias."""
    if hidden.shape[0] != ref_hidden.shape[0] or weight.shape[0] != ref_weight.shape[0]:
        raise ValueError(f"policy and reference must score the same tokens over the same vocabulary; got hidden "
                         f"{tuple(hidden.shape)} / {tuple(ref_hidden.shape)}, heads {tuple(weight.shape)} / "
                         f"{tuple(ref_weight.shape)}")
    if not temperature > 0 or chunk_size < 1:
        raise ValueError(f"temperature must be > 0 and chunk_size >= 1; got {temperature} and {chunk_size}")
    pieces = []
    for start in range(0, hidden.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        args = (hidden[rows], weight, bias, ref_hidden[rows].detach(), ref_weight.detach(),
                None if ref_bias is None else ref_bias.detach(), temperature)
        if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
            # Only the inputs are kept for the backward, which rebuilds this chunk's logits.
            pieces.append(checkpoint(_chunk_kl, *args, use_reentrant=False))
        else:
            pieces.append(_chunk_kl(*args))
    return torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)
