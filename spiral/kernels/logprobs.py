"""`token_logprobs`: the learner's entry point for per-token log-probs (and entropy) of sampled tokens.

Validates the inputs, picks a backend (fused Triton row kernels on CUDA, pure torch elsewhere) and
runs the chunked computation of `torch_chunked`, which never holds more than a chunk of logits.
"""

from __future__ import annotations

import importlib.util
import os

import torch
from torch import Tensor

from spiral.choices import LOGPROB_BACKENDS
from spiral.kernels.torch_chunked import TORCH_ROW_OPS, ChunkedTokenLogprobs, RowOps


def _triton_row_ops() -> RowOps:
    try:
        from spiral.kernels.triton_logprobs import TRITON_ROW_OPS
    except ImportError as err:
        raise RuntimeError(
            "backend='triton' needs the triton package (pip install 'spiral[triton]'); "
            "use backend='torch' or 'auto' without it"
        ) from err
    return TRITON_ROW_OPS


def _select_row_ops(backend: str, device: torch.device) -> RowOps:
    if backend == "torch":
        return TORCH_ROW_OPS
    if backend == "auto":
        if device.type == "cuda" and importlib.util.find_spec("triton") is not None:
            return _triton_row_ops()
        return TORCH_ROW_OPS
    if backend == "triton":
        if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(
                f"backend='triton' runs on CUDA tensors; got {device.type} tensors. On CPU it only works "
                "under the Triton interpreter (set TRITON_INTERPRET=1 before triton is imported); "
                "otherwise use backend='torch' or 'auto'"
            )
        return _triton_row_ops()
    raise ValueError(f"unknown backend {backend!r}; expected one of {LOGPROB_BACKENDS}")


def _validate(hidden: Tensor, weight: Tensor, targets: Tensor, bias: Tensor | None, temperature: float,
              chunk_size: int) -> None:
    if hidden.dim() != 2 or weight.dim() != 2:
        raise ValueError(
            f"hidden must be [tokens, hidden] and weight [vocab, hidden]; got {tuple(hidden.shape)} and "
            f"{tuple(weight.shape)} (flatten batch and sequence dimensions first)"
        )
    if hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"hidden size mismatch: hidden {tuple(hidden.shape)} vs weight {tuple(weight.shape)}")
    if hidden.dtype != weight.dtype:
        raise ValueError(f"hidden ({hidden.dtype}) and weight ({weight.dtype}) must share a dtype")
    if not hidden.dtype.is_floating_point:
        raise ValueError(f"hidden must be a floating-point tensor, got {hidden.dtype}")
    if hidden.device != weight.device or targets.device != hidden.device:
        raise ValueError(
            f"hidden, weight and targets must be on one device; got {hidden.device}, {weight.device}, "
            f"{targets.device}"
        )
    if targets.shape != (hidden.shape[0],) or targets.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"targets must be an integer tensor of shape ({hidden.shape[0]},); got {targets.dtype} "
            f"{tuple(targets.shape)}"
        )
    if bias is not None and (bias.shape != (weight.shape[0],) or bias.device != weight.device):
        raise ValueError(f"bias must have shape ({weight.shape[0]},) on {weight.device}; got {tuple(bias.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    # An out-of-range id would make the Triton kernel read past the row: check (one host sync).
    if targets.numel() and bool((targets.min() < 0) | (targets.max() >= weight.shape[0])):
        raise ValueError(f"targets must lie in [0, {weight.shape[0]}); got ids outside it")


def token_logprobs(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    *,
    temperature: float = 1.0,
    bias: Tensor | None = None,
    return_entropy: bool = False,
    backend: str = "auto",
    chunk_size: int = 1024,
) -> tuple[Tensor, Tensor | None]:
    """Log-prob of each target token under softmax((hidden @ weight.T + bias) / temperature).

    hidden: [T, H] final hidden states (after the model's last norm), one row per scored token.
    weight: [V, H] output-embedding matrix (see `lm_head_weight`); bias: optional [V].
    targets: [T] token ids. temperature divides the logits, as vLLM's sampler does, so the result is
    the log-prob under the distribution the tokens were sampled from.
    Returns (logprobs [T] fp32, entropy [T] fp32 or None). Differentiable w.r.t. hidden, weight and
    bias, through the entropy too. The logits matmul runs in the inputs' dtype (as the model's own
    lm_head does); softmax, gather and entropy are computed in fp32, `chunk_size` tokens at a time.
    backend: "auto" (Triton on CUDA when installed, else torch), "torch", or "triton".
    """
    _validate(hidden, weight, targets, bias, temperature, chunk_size)
    row_ops = _select_row_ops(backend, hidden.device)
    logprobs, entropy = ChunkedTokenLogprobs.apply(
        hidden.contiguous(),
        weight,
        bias,
        targets.long().contiguous(),
        float(temperature),
        return_entropy,
        chunk_size,
        row_ops,
    )
    return logprobs, (entropy if return_entropy else None)
