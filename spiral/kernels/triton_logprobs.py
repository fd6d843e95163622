"""Triton kernels for the row-wise steps of the chunked log-prob computation (CUDA, or CPU under
``TRITON_INTERPRET=1``).

The GEMM producing a chunk's logits stays with torch (cuBLAS); these kernels fuse what follows it so
no fp32 copy of the chunk is ever made:

- forward: one program per token row streams its logits over vocabulary tiles, keeping an online
  logsumexp (running max and rescaled sum) and, for the entropy, the rescaled sum of exp(z)·z, and
  reads the target's logit directly.  H = lse - E_p[z].
- backward: one program per row recomputes p = exp(z - lse) tile by tile and writes
  d loss / d logits = (g_logp·(onehot - p) - g_H·p·(log p + H)) / temperature back into the logits
  buffer in place, ready for the two gradient GEMMs.

Inputs may be fp32, bf16 or fp16; every reduction is done in fp32. Importing this module imports
triton, so set ``TRITON_INTERPRET`` before importing it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from spiral.kernels.torch_chunked import RowOps

# Wide tiles: the loop is memory-bound on GPU, and under the interpreter each tile is one numpy op.
_MAX_BLOCK_V = 4096


@triton.jit
def _forward_kernel(
    logits_ptr,
    row_stride,
    bias_ptr,
    targets_ptr,
    logprob_ptr,
    lse_ptr,
    entropy_ptr,
    vocab,
    temperature,
    HAS_BIAS: tl.constexpr,
    WANT_ENTROPY: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    row_ptr = logits_ptr + row * row_stride
    running_max = float("-inf")
    sum_exp = 0.0
    sum_exp_z = 0.0  # sum of exp(z - running_max) * z, for the entropy
    for start in range(0, vocab, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        mask = cols < vocab
        z = tl.load(row_ptr + cols, mask=mask, other=float("-inf")).to(tl.float32)
        if HAS_BIAS:
            z += tl.load(bias_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        z = z / temperature
        new_max = tl.maximum(running_max, tl.max(z, axis=0))
        rescale = tl.exp(running_max - new_max)
        e = tl.exp(z - new_max)
        sum_exp = sum_exp * rescale + tl.sum(e, axis=0)
        if WANT_ENTROPY:
            # masked lanes hold z = -inf and e = 0: zero z there so 0 * -inf does not make a nan
            sum_exp_z = sum_exp_z * rescale + tl.sum(e * tl.where(mask, z, 0.0), axis=0)
        running_max = new_max

    lse = running_max + tl.log(sum_exp)
    target = tl.load(targets_ptr + row)
    z_target = tl.load(row_ptr + target).to(tl.float32)
    if HAS_BIAS:
        z_target += tl.load(bias_ptr + target).to(tl.float32)
    z_target = z_target / temperature
    tl.store(logprob_ptr + row, z_target - lse)
    tl.store(lse_ptr + row, lse)
    if WANT_ENTROPY:
        tl.store(entropy_ptr + row, lse - sum_exp_z / sum_exp)


@triton.jit
def _backward_kernel(
    logits_ptr,
    row_stride,
    bias_ptr,
    targets_ptr,
    lse_ptr,
    entropy_ptr,
    grad_logprob_ptr,
    grad_entropy_ptr,
    vocab,
    temperature,
    HAS_BIAS: tl.constexpr,
    WITH_ENTROPY: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    row_ptr = logits_ptr + row * row_stride
    lse = tl.load(lse_ptr + row)
    target = tl.load(targets_ptr + row)
    g_logprob = tl.load(grad_logprob_ptr + row)
    if WITH_ENTROPY:
        entropy = tl.load(entropy_ptr + row)
        g_entropy = tl.load(grad_entropy_ptr + row)
    for start in range(0, vocab, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        mask = cols < vocab
        z = tl.load(row_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        if HAS_BIAS:
            z += tl.load(bias_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        log_p = z / temperature - lse
        p = tl.exp(log_p)
        if WITH_ENTROPY:
            grad = p * (-g_entropy * (log_p + entropy) - g_logprob)
        else:
            grad = -g_logprob * p
        grad = tl.where(cols == target, grad + g_logprob, grad) / temperature
        tl.store(row_ptr + cols, grad.to(logits_ptr.dtype.element_ty), mask=mask)


def _launch_config(vocab: int) -> tuple[int, int]:
    block_v = min(_MAX_BLOCK_V, triton.next_power_of_2(vocab))
    num_warps = 8 if block_v >= 2048 else 4
    return block_v, num_warps


def _bias_arg(bias: Tensor | None, like: Tensor) -> Tensor:
    # The kernel never reads the pointer when HAS_BIAS is false; any tensor on the device will do.
    return bias.contiguous() if bias is not None else like


def triton_forward_rows(
    logits: Tensor, bias: Tensor | None, targets: Tensor, temperature: float, want_entropy: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    logits = logits.contiguous()
    n_rows, vocab = logits.shape
    logprob = torch.empty(n_rows, dtype=torch.float32, device=logits.device)
    lse = torch.empty_like(logprob)
    entropy = torch.empty_like(logprob) if want_entropy else None
    block_v, num_warps = _launch_config(vocab)
    _forward_kernel[(n_rows,)](
        logits,
        logits.stride(0),
        _bias_arg(bias, logits),
        targets.contiguous(),
        logprob,
        lse,
        entropy if want_entropy else lse,
        vocab,
        float(temperature),
        HAS_BIAS=bias is not None,
        WANT_ENTROPY=want_entropy,
        BLOCK_V=block_v,
        num_warps=num_warps,
    )
    return logprob, lse, entropy


def triton_backward_rows(
    logits: Tensor,
    bias: Tensor | None,
    targets: Tensor,
    temperature: float,
    lse: Tensor,
    entropy: Tensor | None,
    grad_logprob: Tensor,
    grad_entropy: Tensor | None,
) -> Tensor:
    logits = logits.contiguous()
    n_rows, vocab = logits.shape
    with_entropy = entropy is not None and grad_entropy is not None
    block_v, num_warps = _launch_config(vocab)
    _backward_kernel[(n_rows,)](
        logits,
        logits.stride(0),
        _bias_arg(bias, logits),
        targets.contiguous(),
        lse.contiguous(),
        entropy.contiguous() if with_entropy and entropy is not None else lse,
        grad_logprob.contiguous(),
        grad_entropy.contiguous() if with_entropy and grad_entropy is not None else lse,
        vocab,
        float(temperature),
        HAS_BIAS=bias is not None,
        WITH_ENTROPY=with_entropy,
        BLOCK_V=block_v,
        num_warps=num_warps,
    )
    return logits


TRITON_ROW_OPS = RowOps(forward=triton_forward_rows, backward=triton_backward_rows)
