"""Chunked token log-probs and entropy: the autograd function and its pure-torch row operations.

The learner needs log p(target) (and optionally the entropy) of every sampled token under
softmax((hidden @ W.T + b) / temperature). Materialising the full [tokens, vocab] fp32 logits costs
608 KB per token for a 151,936-token vocabulary, so ``ChunkedTokenLogprobs`` walks the tokens in
chunks: per chunk it computes the logits with one GEMM, reduces each row to (log-prob, logsumexp,
entropy) and throws the logits away. Only hidden, weight, bias, targets and two floats per token
(logsumexp, entropy) are saved; the backward recomputes each chunk's logits, turns them into the
softmax gradient and feeds that through two GEMMs. Extra memory is therefore the chunk's logits (model dtype)
plus, on the torch path, one fp32 block of at most 4M elements (16 MiB; a second one for the entropy): the
log-softmax and its gradient are computed in fp32 from a few rows of the chunk at a time, never from an fp32 copy
of the whole chunk.

The row reductions are pluggable (``RowOps``): this module holds the torch version (CPU and the
reference); ``triton_logprobs`` provides fused Triton kernels for the same two steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

# forward(logits, bias, targets, temperature, want_entropy) -> (logprob, lse, entropy or None).
# `logits` is the chunk's freshly computed GEMM output, owned by the caller and free to overwrite.
ForwardRows = Callable[[Tensor, "Tensor | None", Tensor, float, bool], "tuple[Tensor, Tensor, Tensor | None]"]
# backward(logits, bias, targets, temperature, lse, entropy, grad_logprob, grad_entropy) -> d loss / d logits,
# in the dtype of `logits` (which it may overwrite in place). `entropy`/`grad_entropy` are None when unused.
BackwardRows = Callable[
    [Tensor, "Tensor | None", Tensor, float, Tensor, "Tensor | None", Tensor, "Tensor | None"], Tensor
]


@dataclass(frozen=True)
class RowOps:
    """The two row-wise steps of the chunked computation, for one backend."""

    forward: ForwardRows
    backward: BackwardRows


# Rows of a chunk turned into fp32 at a time: about 16 MiB of fp32 per block whatever the vocabulary, so the
# chunk's logits stay in the model's dtype and the fp32 work never holds more than a block (the GEMM still
# runs over the whole chunk, where its efficiency is).
_BLOCK_ELEMENTS = 1 << 22


def _row_blocks(logits: Tensor) -> list[slice]:
    """The row ranges of `logits` handled in fp32 one at a time."""
    step = max(1, _BLOCK_ELEMENTS // max(1, logits.shape[1]))
    return [slice(start, start + step) for start in range(0, logits.shape[0], step)]


def scaled_fp32_logits(logits: Tensor, bias: Tensor | None, temperature: float) -> Tensor:
    """(logits + bias) / temperature in fp32, reusing `logits`' storage when it already is fp32."""
    z = logits.float()
    if bias is not None:
        z.add_(bias.float())
    if temperature != 1.0:
        z.div_(temperature)
    return z


def torch_forward_rows(
    logits: Tensor, bias: Tensor | None, targets: Tensor, temperature: float, want_entropy: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    # Block by block: one fp32 block of scaled logits, turned into its log-softmax in place (log_softmax is
    # markedly faster on CPU than logsumexp, and writing into its input is exact: each row is reduced before it is
    # written). lse = z - log p at any column; column 0 is read before it is overwritten.
    n_rows = logits.shape[0]
    logprob = logits.new_empty(n_rows, dtype=torch.float32)
    lse = logits.new_empty(n_rows, dtype=torch.float32)
    entropy = logits.new_empty(n_rows, dtype=torch.float32) if want_entropy else None
    for rows in _row_blocks(logits):
        z = scaled_fp32_logits(logits[rows], bias, temperature)
        z0 = z[:, 0].clone()
        log_p = torch.log_softmax(z, dim=-1, out=z)
        logprob[rows] = log_p.gather(1, targets[rows, None]).squeeze(1)
        lse[rows] = z0 - log_p[:, 0]
        if entropy is not None:
            entropy[rows] = -torch.exp(log_p).mul_(log_p).sum(dim=-1)  # the one place a second block is needed
        del z, log_p  # free this block before the next one is allocated
    return logprob, lse, entropy


def torch_backward_rows(
    logits: Tensor,
    bias: Tensor | None,
    targets: Tensor,
    temperature: float,
    lse: Tensor,
    entropy: Tensor | None,
    grad_logprob: Tensor,
    grad_entropy: Tensor | None,
) -> Tensor:
    # With z = logits / T and p = softmax(z):
    #   d logp_target / dz = onehot - p
    #   d H / dz           = -p * (log p + H)
    # Block by block, the gradient is built in one fp32 block (two with the entropy term) and written back over
    # that block of `logits`.
    for rows in _row_blocks(logits):
        g_lp = grad_logprob[rows, None]
        log_p = scaled_fp32_logits(logits[rows], bias, temperature).sub_(lse[rows, None])
        if grad_entropy is not None and entropy is not None:
            p = log_p.exp()
            grad = log_p.add_(entropy[rows, None]).mul_(-grad_entropy[rows, None]).sub_(g_lp).mul_(p)
            del p
        else:
            grad = log_p.exp_().mul_(-g_lp)
        grad.scatter_add_(1, targets[rows, None], g_lp)
        if temperature != 1.0:
            grad.div_(temperature)
        if grad.data_ptr() != logits[rows].data_ptr():
            logits[rows] = grad
        del log_p, grad  # free this block before the next one is allocated
    return logits


TORCH_ROW_OPS = RowOps(forward=torch_forward_rows, backward=torch_backward_rows)


class ChunkedTokenLogprobs(torch.autograd.Function):
    """log p(target) and entropy per token, computed chunk by chunk; see the module docstring."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        targets: Tensor,
        temperature: float,
        want_entropy: bool,
        chunk_size: int,
        row_ops: RowOps,
    ) -> tuple[Tensor, Tensor]:
        n_tokens = hidden.shape[0]
        logprob = hidden.new_empty(n_tokens, dtype=torch.float32)
        lse = hidden.new_empty(n_tokens, dtype=torch.float32)
        entropy = hidden.new_empty(n_tokens if want_entropy else 0, dtype=torch.float32)
        for start in range(0, n_tokens, chunk_size):
            rows = slice(start, start + chunk_size)
            logits = hidden[rows] @ weight.t()
            chunk_logprob, chunk_lse, chunk_entropy = row_ops.forward(
                logits, bias, targets[rows], temperature, want_entropy
            )
            logprob[rows] = chunk_logprob
            lse[rows] = chunk_lse
            if want_entropy:
                entropy[rows] = chunk_entropy
            del logits  # drop the chunk before the next GEMM allocates its own

        ctx.save_for_backward(hidden, weight, bias, targets, lse, entropy)
        ctx.temperature = temperature
        ctx.want_entropy = want_entropy
        ctx.chunk_size = chunk_size
        ctx.row_ops = row_ops
        return logprob, entropy

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_logprob: Tensor | None, grad_entropy: Tensor | None):  # type: ignore[override]
        hidden, weight, bias, targets, lse, entropy = ctx.saved_tensors
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        if grad_logprob is None:
            grad_logprob = torch.zeros_like(lse)
        grad_logprob = grad_logprob.float()
        grad_entropy = grad_entropy.float() if ctx.want_entropy and grad_entropy is not None else None
        use_entropy = grad_entropy is not None

        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        # The weight gradient sums over chunks in the weight's dtype with addmm_ (each GEMM accumulates
        # in fp32 internally): an fp32 buffer plus a per-chunk temporary would cost 1.5x the weight.
        grad_weight = torch.zeros_like(weight) if need_weight else None
        grad_bias = torch.zeros_like(bias, dtype=torch.float32) if need_bias else None
        for start in range(0, hidden.shape[0], ctx.chunk_size):
            rows = slice(start, start + ctx.chunk_size)
            h = hidden[rows]
            grad_logits = ctx.row_ops.backward(
                h @ weight.t(),
                bias,
                targets[rows],
                ctx.temperature,
                lse[rows],
                entropy[rows] if use_entropy else None,
                grad_logprob[rows],
                grad_entropy[rows] if grad_entropy is not None else None,
            )
            if grad_hidden is not None:
                torch.mm(grad_logits, weight, out=grad_hidden[rows])
            if grad_weight is not None:
                grad_weight.addmm_(grad_logits.t(), h)
            if grad_bias is not None:
                grad_bias.add_(grad_logits.sum(dim=0, dtype=torch.float32))
            del grad_logits

        if grad_bias is not None:
            grad_bias = grad_bias.to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None, None, None
