"""Triton kernels under the Triton interpreter on CPU tensors, against the naive computation.

Not collected by the default run (the file name does not match test_*.py): TRITON_INTERPRET must be
set before triton is first imported, so test_triton_interpreter.py runs this file in a fresh pytest
process with the variable set.
"""

from __future__ import annotations

import os

import pytest
import torch

from spiral.kernels import token_logprobs
from tests.kernels.helpers import check_against_naive

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("run through test_triton_interpreter.py (needs TRITON_INTERPRET=1)", allow_module_level=True)

# (tokens, hidden, vocab, chunk): several 4096-wide vocab tiles with a ragged last one and a ragged
# last chunk; one token; a vocab smaller than a tile with the chunk larger than the input.
SHAPES = [(7, 16, 9000, 3), (1, 8, 333, 1024), (6, 12, 1000, 64)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("temperature", [0.6, 1.0, 1.7])
@pytest.mark.parametrize("with_entropy", [False, True], ids=["lp", "lp+entropy"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_triton_kernels_match_naive(dtype, temperature, with_entropy, shape):
    check_against_naive(token_logprobs, dtype, temperature, with_entropy, shape, backend="triton")


def test_triton_without_bias_matches_torch_path():
    gen = torch.Generator().manual_seed(3)
    hidden = torch.randn(10, 16, generator=gen, requires_grad=True)
    weight = torch.randn(5000, 16, generator=gen, requires_grad=True)
    targets = torch.randint(0, 5000, (10,), generator=gen)
    results = []
    for backend in ("triton", "torch"):
        lp, ent = token_logprobs(hidden, weight, targets, temperature=0.8, return_entropy=True, backend=backend,
                                 chunk_size=4)
        results.append((lp, ent, *torch.autograd.grad((lp - 0.3 * ent).sum(), [hidden, weight])))
    for ours, ref in zip(*results):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)
