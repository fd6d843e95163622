"""Cascade attention equals plain attention over the shared prefix followed by each row's own tokens."""

import pytest
import torch
from torch import Tensor, nn

from spiral.models.cascade import cascade_attention

ROWS, HEADS, KV_HEADS, DIM, PREFIX = 3, 4, 2, 8, 5


class _Layer(nn.Module):
    def __init__(self, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx


def _reference(query, prefix_k, prefix_v, key, value, allowed):
    """Softmax attention over [prefix; own keys], grouped-query heads expanded, `allowed` [rows, q, own] bool."""
    group = HEADS // KV_HEADS
    keys = torch.cat([prefix_k.expand(ROWS, -1, -1, -1), key], dim=2).repeat_interleave(group, dim=1)
    values = torch.cat([prefix_v.expand(ROWS, -1, -1, -1), value], dim=2).repeat_interleave(group, dim=1)
    visible = torch.cat([torch.ones(*allowed.shape[:2], PREFIX, dtype=torch.bool), allowed], dim=-1)
    scores = query @ keys.transpose(2, 3) * DIM ** -0.5
    scores = scores.masked_fill(~visible[:, None], float("-inf"))
    return (torch.softmax(scores, -1) @ values).transpose(1, 2)


def _inputs(q_len: int, own_len: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(ROWS, HEADS, q_len, DIM, generator=g)
    key, value = (torch.randn(ROWS, KV_HEADS, own_len, DIM, generator=g) for _ in range(2))
    # Two layers of prefix keys: the function must read the one of its own layer.
    shared = [tuple(torch.randn(1, KV_HEADS, PREFIX, DIM, generator=g) for _ in range(2)) for _ in range(2)]
    return query, key, value, shared


def test_decode_step_with_left_padding():
    query, key, value, shared = _inputs(q_len=1, own_len=6, seed=0)
    allowed = torch.ones(ROWS, 1, 6, dtype=torch.bool)
    allowed[0, :, :3] = False  # row 0's first three own tokens are padding
    allowed[2, :, :5] = False
    out, weights = cascade_attention(_Layer(1), query, key, value, allowed[:, None], shared_kv=shared)
    assert weights is None
    torch.testing.assert_close(out, _reference(query, *shared[1], key, value, allowed), atol=1e-5, rtol=1e-5)


def test_prefill_without_mask_is_causal_over_own_tokens():
    query, key, value, shared = _inputs(q_len=4, own_len=4, seed=1)
    causal = torch.ones(4, 4, dtype=torch.bool).tril().expand(ROWS, -1, -1)
    out, _ = cascade_attention(_Layer(0), query, key, value, None, shared_kv=shared)
    torch.testing.assert_close(out, _reference(query, *shared[0], key, value, causal), atol=1e-5, rtol=1e-5)


def test_prefill_with_padding_mask_and_cached_own_tokens():
    """Queries for the last 3 of 7 own tokens; row 1 is padded up to its last token, which still sees the prefix."""
    query, key, value, shared = _inputs(q_len=3, own_len=7, seed=2)
    allowed = torch.ones(7, 7, dtype=torch.bool).tril()[4:].repeat(ROWS, 1, 1)
    allowed[1, :, :6] = False
    out, _ = cascade_attention(_Layer(1), query, key, value, allowed[:, None], shared_kv=shared)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, _reference(query, *shared[1], key, value, allowed), atol=1e-5, rtol=1e-5)


def test_dropout_is_refused():
    query, key, value, shared = _inputs(q_len=1, own_len=2, seed=3)
    with pytest.raises(ValueError, match="dropout"):
        cascade_attention(_Layer(0), query, key, value, None, dropout=0.1, shared_kv=shared)


def _shared_prefix_and_whole_rows(device: str, dtype: torch.dtype) -> tuple[list[Tensor], list[Tensor]]:
    """Logits of the tiny Qwen3 after a 20-token prefix for two rows: (prefix once + left-padded rest under
    `shared_kv`, each whole row alone), as fp32 on the CPU."""
    from transformers import AutoModelForCausalLM

    from spiral.models.builtin import resolve_builtin
    from spiral.models.cascade import shared_prefix_kv, use_cascade_attention

    model = AutoModelForCausalLM.from_pretrained(str(resolve_builtin("builtin:tiny")), dtype=dtype).to(device).eval()
    assert use_cascade_attention(model)
    g = torch.Generator().manual_seed(4)
    prefix = torch.randint(5, 1000, (20,), generator=g).to(device)
    rests = [torch.randint(5, 1000, (n,), generator=g).to(device) for n in (3, 6)]
    cascade, whole = [], []
    with torch.no_grad():
        shared = shared_prefix_kv(model.get_decoder(), prefix)
        ids = torch.zeros(2, 6, dtype=torch.long, device=device)
        mask = torch.zeros(2, 6, dtype=torch.long, device=device)
        for row, rest in enumerate(rests):
            ids[row, 6 - len(rest):], mask[row, 6 - len(rest):] = rest, 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0) + len(prefix)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, shared_kv=shared).logits
        for row, rest in enumerate(rests):
            cascade.append(logits[row, 6 - len(rest):].float().cpu())
            whole.append(model(input_ids=torch.cat([prefix, rest])[None]).logits[0, len(prefix):].float().cpu())
    return cascade, whole


def test_tiny_qwen3_with_shared_prefix_equals_whole_rows():
    """Through the real model: prefix once + left-padded rest under `shared_kv` gives the whole rows' logits."""
    cascade, whole = _shared_prefix_and_whole_rows("cpu", torch.float32)
    for ours, reference in zip(cascade, whole):
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_tiny_qwen3_cascade_on_cuda_is_as_close_to_fp32_as_plain_attention(dtype):
    """On the GPU (TF32 or bf16 arithmetic), cascade attention strays from the CPU fp32 logits no further than
    the whole rows under the model's plain attention do."""
    exact, _ = _shared_prefix_and_whole_rows("cpu", torch.float32)
    cascade, whole = _shared_prefix_and_whole_rows("cuda", dtype)
    for ours, plain, reference in zip(cascade, whole, exact):
        plain_error = (plain - reference).abs().max().item()
        assert (ours - reference).abs().max().item() <= 2 * plain_error + 1e-4
