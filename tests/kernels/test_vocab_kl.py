"""`vocab_kl` against the full-vocabulary KL computed naively, values and gradients."""

from __future__ import annotations

import pytest
import torch

from spiral.kernels import vocab_kl


def naive_kl(hidden, weight, bias, ref_hidden, ref_weight, temperature):
    log_p = torch.log_softmax((hidden @ weight.t() + bias) / temperature, dim=-1)
    log_q = torch.log_softmax((ref_hidden @ ref_weight.t()) / temperature, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


@pytest.mark.parametrize("chunk_size", [1, 3, 64])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_vocab_kl_matches_the_full_logits_and_their_gradients(chunk_size, temperature):
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(7, 16, generator=gen, requires_grad=True)
    weight = torch.randn(50, 16, generator=gen, requires_grad=True)
    bias = torch.randn(50, generator=gen, requires_grad=True)
    ref_hidden, ref_weight = torch.randn(7, 16, generator=gen), torch.randn(50, 16, generator=gen)

    kl = vocab_kl(hidden, weight, ref_hidden, ref_weight, bias=bias, temperature=temperature, chunk_size=chunk_size)
    expected = naive_kl(hidden, weight, bias, ref_hidden, ref_weight, temperature)
    torch.testing.assert_close(kl, expected, atol=2e-5, rtol=1e-5)
    assert (kl > 0.1).all()  # far-apart random heads: a check that cannot pass on zeros
    upstream = torch.linspace(-1.0, 2.0, 7)
    grads = torch.autograd.grad((kl * upstream).sum(), [hidden, weight, bias])
    expected_grads = torch.autograd.grad((expected * upstream).sum(), [hidden, weight, bias])
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_vocab_kl_is_zero_against_itself_and_refuses_mismatched_inputs():
    hidden, weight = torch.randn(5, 8), torch.randn(30, 8)
    assert vocab_kl(hidden, weight, hidden, weight).abs().max() < 1e-6
    with pytest.raises(ValueError, match="same tokens over the same vocabulary"):
        vocab_kl(hidden, weight, hidden[:4], weight)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        vocab_kl(hidden, weight, hidden, weight, temperature=0.0)
