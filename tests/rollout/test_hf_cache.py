"""The HF engine's in-place KV cache: same attention inputs as transformers' DynamicCache, bounded, repeatable."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, DynamicCache

from spiral.rollout.hf_cache import PreallocatedLayer, preallocated_cache


def test_layer_exposes_exactly_the_tokens_written_so_far():
    layer = PreallocatedLayer(capacity=6)
    first = torch.randn(2, 3, 4, 8)
    second = torch.randn(2, 3, 1, 8)
    keys, values = layer.update(first, -first)
    assert torch.equal(keys, first) and torch.equal(values, -first)
    keys, values = layer.update(second, -second)
    assert torch.equal(keys, torch.cat([first, second], dim=2))
    assert torch.equal(values, torch.cat([-first, -second], dim=2))
    assert layer.get_seq_length() == 5
    assert layer.get_mask_sizes(query_length=1) == (6, 0)


def test_layer_refuses_to_write_past_its_capacity():
    layer = PreallocatedLayer(capacity=4)
    layer.update(torch.zeros(1, 1, 3, 2), torch.zeros(1, 1, 3, 2))
    with pytest.raises(RuntimeError, match="holds 4 positions"):
        layer.update(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))


def test_repeating_rows_keeps_the_tokens_and_leaves_room_to_grow():
    layer = PreallocatedLayer(capacity=5)
    prefix = torch.randn(1, 2, 3, 4)
    layer.update(prefix, prefix)
    layer.batch_repeat_interleave(3)
    step = torch.randn(3, 2, 1, 4)
    keys, _ = layer.update(step, step)
    assert torch.equal(keys, torch.cat([prefix.expand(3, -1, -1, -1), step], dim=2))


@pytest.mark.parametrize("capacity", [5, 12], ids=["mostly-filled", "mostly-empty"])  # the two copy routes
def test_selecting_rows_keeps_their_tokens_in_order_and_leaves_room_to_grow(capacity):
    layer = PreallocatedLayer(capacity=capacity)
    prompt = torch.randn(3, 2, 3, 4)
    layer.update(prompt, -prompt)
    rows = torch.tensor([2, 0, 2, 2])
    layer.batch_select_indices(rows)
    step = torch.randn(4, 2, 2, 4)
    keys, values = layer.update(step, -step)
    assert torch.equal(keys, torch.cat([prompt[rows], step], dim=2))
    assert torch.equal(values, torch.cat([-prompt[rows], -step], dim=2))
    keys[2].zero_()  # rows picked twice are copies: writing one leaves the other alone
    assert torch.equal(layer.keys[0], torch.cat([prompt[2], step[0]], dim=1))


def test_decoding_with_it_matches_transformers_dynamic_cache(tiny_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32).eval()
    prompt = torch.randint(10, 500, (2, 7), generator=torch.Generator().manual_seed(0))
    caches = {"dynamic": DynamicCache(config=model.config), "preallocated": preallocated_cache(model.config, 7 + 4)}
    assert all(isinstance(layer, PreallocatedLayer) for layer in caches["preallocated"].layers)
    logits = {}
    with torch.no_grad():
        for name, cache in caches.items():
            out = model(input_ids=prompt, past_key_values=cache, use_cache=True)
            steps = [out.logits[:, -1]]
            for _ in range(4):
                nxt = steps[-1].argmax(-1, keepdim=True)
                steps.append(model(input_ids=nxt, past_key_values=cache, use_cache=True).logits[:, -1])
            logits[name] = torch.stack(steps)
    torch.testing.assert_close(logits["preallocated"], logits["dynamic"], atol=1e-5, rtol=0)
