"""Cascade attention: rows that share a prompt prefix read its keys and values once, not once per row.

In self-play every prompt of a batch starts with the same game rules, often most of the prompt. Repeating
that prefix's KV cache for every row (what a plain cache does) makes each decode step read it `rows` times,
and transformers' SDPA path copies it once more to expand grouped-query heads. Here the prefix is kept once,
at batch size 1, and each layer scores all rows' queries against it in one matrix product; the rows' own
tokens (the per-row cache) are scored as usual, and a single softmax over both parts gives exactly the
attention over the concatenated sequence.

A model switched to `CASCADE_ATTENTION` behaves as SDPA unless a forward call passes `shared_kv` (the
prefix's per-layer keys and values from `shared_prefix_kv`); then its `attention_mask`, positions and cache
cover only the tokens after the prefix, and the prefix counts as visible to every token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch import Tensor, nn
    from transformers import PreTrainedModel

CASCADE_ATTENTION = "spiral_cascade"

SharedKV = list[tuple["Tensor", "Tensor"]]
"""Per decoder layer, the shared prefix's (keys, values), each [1, kv_heads, prefix_len, head_dim]."""


def cascade_attention(module: nn.Module, query: Tensor, key: Tensor, value: Tensor, attention_mask: Tensor | None,
                      scaling: float | None = None, dropout: float = 0.0, shared_kv: SharedKV | None = None,
                      **kwargs) -> tuple[Tensor, None]:
    """Attention over (shared prefix, then each row's own keys); SDPA when there is no shared prefix.

    `query` is [rows, heads, q_len, head_dim], `key`/`value` [rows, kv_heads, kv_len, head_dim] (the tokens
    after the prefix), `attention_mask` None or [rows, 1, q_len, kv_len] (bool: True attends; float: added).
    Returns [rows, q_len, heads, head_dim], the layout transformers' attention functions return.
    """
    if shared_kv is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    if dropout:
        raise ValueError("cascade attention has no dropout; call it on a model in eval mode")
    prefix_k, prefix_v = shared_kv[module.layer_idx]
    rows, heads, q_len, dim = query.shape
    kv_heads, kv_len, prefix_len = key.shape[1], key.shape[2], prefix_k.shape[2]
    group = heads // kv_heads
    scaling = dim ** -0.5 if scaling is None else scaling
    # Query head h reads key head h // group: folding the group into the query axis needs no copy of K or V.
    q = query.reshape(rows, kv_heads, group * q_len, dim) * scaling
    # One product per key head for all rows at once: [kv_heads, rows * group * q_len, prefix_len].
    prefix_scores = torch.matmul(q.transpose(0, 1).reshape(kv_heads, -1, dim), prefix_k[0].transpose(1, 2))
    prefix_scores = prefix_scores.view(kv_heads, rows, group * q_len, prefix_len).transpose(0, 1)
    own_scores = torch.matmul(q, key.transpose(2, 3)).view(rows, kv_heads, group, q_len, kv_len)
    if attention_mask is None and q_len > 1:
        # Causal among the rows' own tokens: query i sits at position kv_len - q_len + i of them.
        attention_mask = (torch.arange(kv_len, device=query.device)[None, :]
                          <= torch.arange(q_len, device=query.device)[:, None] + (kv_len - q_len))
    if attention_mask is not None:
        mask = attention_mask.unsqueeze(2) if attention_mask.dim() == 4 else attention_mask
        if mask.dtype == torch.bool:
            own_scores = own_scores.masked_fill(~mask, float("-inf"))
        else:
            own_scores = own_scores + mask
    own_scores = own_scores.view(rows, kv_heads, group * q_len, kv_len)
    # Every query sees the whole prefix, so no softmax row is empty (a padded query included).
    probs = torch.softmax(torch.cat([prefix_scores, own_scores], dim=-1).float(), dim=-1).to(value.dtype)
    prefix_probs = probs[..., :prefix_len].transpose(0, 1).reshape(kv_heads, -1, prefix_len)
    out = torch.matmul(prefix_probs, prefix_v[0]).view(kv_heads, rows, group * q_len, dim).transpose(0, 1)
    out = out + torch.matmul(probs[..., prefix_len:], value)
    return out.view(rows, kv_heads, group, q_len, dim).permute(0, 3, 1, 2, 4).reshape(rows, q_len, heads, dim), None


def use_cascade_attention(model: PreTrainedModel) -> bool:
    """Switch `model` to cascade attention (registered with transformers on first use); False when the model
    cannot switch (its code does not dispatch through transformers' attention interface), and then it must
    not be given `shared_kv`, which it would ignore."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(CASCADE_ATTENTION, cascade_attention)
    # Masks are built as for SDPA, over the tokens after the prefix.
    ALL_MASK_ATTENTION_FUNCTIONS.register(CASCADE_ATTENTION, sdpa_mask)
    model.set_attn_implementation(CASCADE_ATTENTION)
    return model.config._attn_implementation == CASCADE_ATTENTION


def shared_prefix_kv(decoder: nn.Module, prefix_ids: Tensor) -> SharedKV:
    """Run the 1-D `prefix_ids` through `decoder` once; its keys and values per layer, for `shared_kv`."""
    from transformers import DynamicCache

    cache = DynamicCache(config=decoder.config)
    decoder(input_ids=prefix_ids[None], past_key_values=cache, use_cache=True)
    return [(layer.keys, layer.values) for layer in cache.layers]
