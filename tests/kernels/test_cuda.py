"""token_logprobs on a real GPU: Triton kernels at Qwen3 vocabulary size against the naive path,
peak memory bounded by the chunk, and a timing sanity check. Skipped without CUDA."""

from __future__ import annotations

import time

import pytest
import torch

from spiral.kernels import token_logprobs
from tests.kernels.helpers import check_against_naive

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

VOCAB, HIDDEN, TOKENS = 151936, 1024, 2048


def _inputs(dtype, tokens=TOKENS, vocab=VOCAB, hidden=HIDDEN):
    gen = torch.Generator(device="cuda").manual_seed(0)
    h = torch.randn(tokens, hidden, device="cuda", generator=gen).to(dtype)
    w = (torch.randn(vocab, hidden, device="cuda", generator=gen) / hidden**0.5 * 3).to(dtype)
    t = torch.randint(0, vocab, (tokens,), device="cuda", generator=gen)
    return h, w, t


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize("with_entropy", [False, True], ids=["lp", "lp+entropy"])
def test_triton_matches_naive_at_qwen_vocab(dtype, with_entropy):
    check_against_naive(token_logprobs, dtype, 0.6, with_entropy, (TOKENS, HIDDEN, VOCAB, 512), backend="triton",
                  device="cuda")


def test_auto_backend_on_cuda_matches_naive():
    check_against_naive(token_logprobs, torch.bfloat16, 1.0, True, (300, 64, 40000, 128), backend="auto", device="cuda")


def test_peak_memory_is_bounded_by_the_chunk():
    h, w, t = _inputs(torch.bfloat16)
    h.requires_grad_()
    w.requires_grad_()
    chunk = 256
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    lp, ent = token_logprobs(h, w, t, return_entropy=True, chunk_size=chunk)
    forward_peak = torch.cuda.max_memory_allocated() - base
    chunk_logits = chunk * VOCAB * 2
    assert forward_peak <= chunk_logits + 4 * TOKENS * 4 + (1 << 20), forward_peak
    torch.cuda.reset_peak_memory_stats()
    (lp.sum() + ent.sum()).backward()
    backward_peak = torch.cuda.max_memory_allocated() - base
    # grads of hidden and weight themselves, plus one chunk of logits (+ cuBLAS workspace slack)
    assert backward_peak <= h.numel() * 2 + w.numel() * 2 + 2 * chunk_logits + (64 << 20), backward_peak
    naive_logits_fp32 = TOKENS * VOCAB * 4
    assert forward_peak * 8 < naive_logits_fp32


def _time(fn, repeats=5):
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def test_forward_is_not_slower_than_naive():
    h, w, t = _inputs(torch.bfloat16)

    def naive():
        return torch.log_softmax((h @ w.t()).float(), dim=-1).gather(1, t[:, None])

    ours = _time(lambda: token_logprobs(h, w, t))
    reference = _time(naive)
    assert ours <= 1.5 * reference, (ours, reference)
