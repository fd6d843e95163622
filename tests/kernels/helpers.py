"""Helpers for the kernel tests: the naive full-vocabulary computation and the check against it."""

from __future__ import annotations

import torch


def naive_token_logprobs(hidden, weight, targets, temperature=1.0, bias=None):
    """Full [T, V] fp32 log_softmax + gather, the way the model's logits would be scored."""
    logits = (hidden @ weight.t()).float()
    if bias is not None:
        logits = logits + bias.float()
    log_probs = torch.log_softmax(logits / temperature, dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return log_probs.gather(1, targets[:, None]).squeeze(1), entropy


# Tolerances against the naive path: values (absolute, nats) and gradients (relative to the largest
# entry). Both paths share the low-precision logits GEMM; they differ in the rounding of the logits
# gradient before the backward GEMMs and in GEMM blocking.
TOLERANCES = {
    torch.float32: (2e-5, 2e-4),
    torch.bfloat16: (2e-2, 3e-2),
    torch.float16: (5e-3, 5e-3),
}


def assert_close_rel(actual, expected, rel):
    scale = expected.float().abs().max().clamp_min(1e-6)
    err = (actual.float() - expected.float()).abs().max()
    assert err <= rel * scale, f"max error {err:.3g} > {rel} x max |expected| {scale:.3g}"


def check_against_naive(token_logprobs, dtype, temperature, with_entropy, shape, backend, with_bias=True, seed=0,
                        device="cpu"):
    """Values and gradients (hidden, weight, bias; through the entropy too) match the naive path."""
    tokens, hidden_size, vocab, chunk = shape
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(tokens, hidden_size, generator=gen).to(device, dtype).requires_grad_()
    weight = (torch.randn(vocab, hidden_size, generator=gen) / hidden_size**0.5 * 3).to(device, dtype).requires_grad_()
    bias = torch.randn(vocab, generator=gen).to(device).requires_grad_() if with_bias else None
    targets = torch.randint(0, vocab, (tokens,), generator=gen).to(device)
    grad_lp = torch.randn(tokens, generator=gen).to(device)
    grad_ent = torch.randn(tokens, generator=gen).to(device)
    inputs = [hidden, weight] + ([bias] if with_bias else [])

    lp, ent = token_logprobs(hidden, weight, targets, temperature=temperature, bias=bias,
                             return_entropy=with_entropy, backend=backend, chunk_size=chunk)
    ref_lp, ref_ent = naive_token_logprobs(hidden, weight, targets, temperature, bias)
    assert lp.dtype == torch.float32 and lp.shape == (tokens,)
    value_tol, grad_tol = TOLERANCES[dtype]
    torch.testing.assert_close(lp, ref_lp, atol=value_tol, rtol=0)
    loss, ref_loss = (lp * grad_lp).sum(), (ref_lp * grad_lp).sum()
    if with_entropy:
        assert ent is not None and ent.dtype == torch.float32
        torch.testing.assert_close(ent, ref_ent, atol=value_tol, rtol=0)
        loss, ref_loss = loss + (ent * grad_ent).sum(), ref_loss + (ref_ent * grad_ent).sum()
    else:
        assert ent is None
    grads = torch.autograd.grad(loss, inputs)
    ref_grads = torch.autograd.grad(ref_loss, inputs)
    for name, g, ref in zip(["hidden", "weight", "bias"], grads, ref_grads):
        assert g.dtype == ref.dtype and g.shape == ref.shape, name
        assert_close_rel(g, ref, grad_tol)

