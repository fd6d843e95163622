"""Padding, target alignment and splitting of turn samples."""

import math

import pytest
import torch

from spiral.learner.batching import collate, micro_batches, shuffled_order, split_even
from spiral.types import TurnSample


def _s(prompt, completion, adv=0.0):
    return TurnSample("g", 0, prompt, completion, [0.0] * len(completion), 0.0, advantage=adv)


def test_collate_aligns_scored_positions_with_completion_tokens():
    batch = collate([_s([1, 2, 3], [4, 5], 1.0), _s([6], [7, 8, 9], -1.0)], pad_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    # The scored targets, in order, are exactly each completion.
    assert batch.targets[0][batch.score_mask[0]].tolist() == [4, 5]
    assert batch.targets[1][batch.score_mask[1]].tolist() == [7, 8, 9]
    assert batch.score_mask.tolist() == [[False, False, True, True, False], [True, True, True, False, False]]
    assert batch.advantages.tolist() == [1.0, -1.0]
    flat = torch.arange(5, dtype=torch.float32)
    assert batch.sample_logprobs(flat).tolist() == [[0.0, 1.0, 0.0], [2.0, 3.0, 4.0]]
    assert batch.sample_mask.tolist() == [[True, True, False], [True, True, True]]


def test_choice_sample_is_renormalised_over_its_moves():
    choice = TurnSample("g", 1, [1, 2], [7], [0.0], 0.0, advantage=0.5, choices=[[6], [7, 8]], choice_index=1)
    batch = collate([_s([3], [4, 5]), choice], pad_id=0)
    assert batch.rows == [[0], [1, 2]] and batch.choice_index == [-1, 1]
    assert batch.input_ids.tolist() == [[3, 4, 5, 0], [1, 2, 6, 0], [1, 2, 7, 8]]
    # Scored values in row order: free sample (2), move [6] (1), move [7, 8] (2).
    flat = torch.log(torch.tensor([0.5, 0.25, 0.2, 0.5, 0.6]))
    out = batch.sample_logprobs(flat)
    p6, p78 = 0.2, 0.5 * 0.6
    assert out[0].tolist() == pytest.approx([math.log(0.5), math.log(0.25)])
    assert out[1, 0].item() == pytest.approx(math.log(p78 / (p6 + p78)))
    assert batch.sample_mask.tolist() == [[True, True], [True, False]]
    with pytest.raises(ValueError, match="choice_index"):
        collate([TurnSample("g", 0, [1], [2], [0.0], 0.0, choices=[[2]], choice_index=3)], pad_id=0)


def test_collate_refuses_empty_completion():
    with pytest.raises(ValueError, match="empty"):
        collate([_s([1], [])], pad_id=0)


def test_splitting():
    assert split_even(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split_even([0], 2) == [[0], []]
    assert micro_batches([5, 6, 7, 8, 9], 2) == [[5, 6], [7, 8], [9]]
    order = shuffled_order(10, seed=3)
    assert sorted(order) == list(range(10)) and order == shuffled_order(10, seed=3)
    assert order != shuffled_order(10, seed=4)
