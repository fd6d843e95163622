"""Padding, target alignment and splitting of turn samples."""

import math

import pytest
import torch

from spiral.learner.batching import (
    collate,
    micro_batches,
    shuffled_order,
    split_even,
    tree_attention_mask,
)
from spiral.types import TurnSample


def _s(prompt, completion, adv=0.0):
    return TurnSample("g", 0, prompt, completion, [0.0] * len(completion), 0.0, advantage=adv)


def test_collate_aligns_scored_positions_with_completion_tokens():
    batch = collate([_s([1, 2, 3], [4, 5], 1.0), _s([6], [7, 8, 9], -1.0)], pad_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 0]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 0]]
    assert batch.branch_ids.tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 0, -1]]
    assert not batch.has_choices
    # Each scored hidden state is the token just before its target, and the targets are the completions.
    assert batch.score_rows.tolist() == [0, 0, 1, 1, 1]
    assert batch.score_cols.tolist() == [2, 3, 0, 1, 2]
    assert batch.score_targets.tolist() == [4, 5, 7, 8, 9]
    assert batch.input_ids[batch.score_rows, batch.score_cols + 1].tolist() == batch.score_targets.tolist()
    assert batch.advantages.tolist() == [1.0, -1.0]
    flat = torch.arange(5, dtype=torch.float32)
    assert batch.sample_logprobs(flat).tolist() == [[0.0, 1.0, 0.0], [2.0, 3.0, 4.0]]
    # Free samples: the entropy at each learning token is the scored token's own (over the vocabulary).
    assert batch.sample_entropies(flat, flat + 10).tolist() == [[10.0, 11.0, 0.0], [12.0, 13.0, 14.0]]
    assert batch.sample_mask.tolist() == [[True, True, False], [True, True, True]]


def test_choice_sample_packs_its_moves_behind_one_prompt():
    choice = TurnSample("g", 1, [1, 2], [7], [0.0], 0.0, advantage=0.5, choices=[[6], [7, 8]], choice_index=1)
    batch = collate([_s([3], [4, 5]), choice], pad_id=0)
    assert batch.choice_index == [-1, 1] and batch.has_choices
    assert batch.input_ids.tolist() == [[3, 4, 5, 0, 0], [1, 2, 6, 7, 8]]
    # Every move starts at the position right after the prompt.
    assert batch.position_ids[1].tolist() == [0, 1, 2, 2, 3]
    assert batch.branch_ids[1].tolist() == [0, 0, 1, 2, 2]
    # The prompt's last hidden state (column 1) predicts both moves' first tokens.
    assert list(zip(batch.score_rows.tolist(), batch.score_cols.tolist(), batch.score_targets.tolist())) == [
        (0, 0, 4), (0, 1, 5), (1, 1, 6), (1, 1, 7), (1, 3, 8)]
    allowed = tree_attention_mask(batch.branch_ids)[1, 0].int().tolist()
    assert allowed == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],  # move [6] sees the prompt
        [1, 1, 0, 1, 0],  # move [7, 8] sees the prompt, not move [6]
        [1, 1, 0, 1, 1],
    ]
    # A free row under the tree mask is plain causal attention over its real tokens.
    assert tree_attention_mask(batch.branch_ids)[0, 0, 2].int().tolist() == [1, 1, 1, 0, 0]
    # Scored values in order: free sample (2), move [6] (1), move [7, 8] (2).
    flat = torch.log(torch.tensor([0.5, 0.25, 0.2, 0.5, 0.6]))
    out = batch.sample_logprobs(flat)
    p6, p78 = 0.2, 0.5 * 0.6
    assert out[0].tolist() == pytest.approx([math.log(0.5), math.log(0.25)])
    assert out[1, 0].item() == pytest.approx(math.log(p78 / (p6 + p78)))
    q6, q78 = p6 / (p6 + p78), p78 / (p6 + p78)
    # A choice sample's one learning token carries the entropy over its moves, not a vocabulary entropy.
    entropies = batch.sample_entropies(flat, torch.full((5,), 7.0))
    assert entropies[0].tolist() == [7.0, 7.0]
    assert entropies[1, 0].item() == pytest.approx(-(q6 * math.log(q6) + q78 * math.log(q78)))
    assert batch.sample_mask.tolist() == [[True, True], [True, False]]
    with pytest.raises(ValueError, match="choice_index"):
        collate([TurnSample("g", 0, [1], [2], [0.0], 0.0, choices=[[2]], choice_index=3)], pad_id=0)


def test_identical_samples_share_one_row():
    first = TurnSample("g", 0, [1, 2], [7], [0.0], 0.0, advantage=1.0, choices=[[6], [7, 8]], choice_index=1)
    again = TurnSample("g", 0, [1, 2], [6], [0.0], 0.0, advantage=-1.0, choices=[[6], [7, 8]], choice_index=0)
    batch = collate([first, _s([3], [4, 5]), again, _s([3], [4, 5], 2.0), _s([3, 4], [5])], pad_id=0)
    # Same prompt and moves (whichever was chosen), same prompt and completion, or the same tokens split
    # differently between prompt and completion: one row each.
    assert batch.input_ids.tolist() == [[1, 2, 6, 7, 8], [3, 4, 5, 0, 0]]
    assert batch.score_rows.tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1]
    assert batch.score_cols.tolist() == [1, 1, 3, 0, 1, 1, 1, 3, 0, 1, 1]
    assert batch.score_targets.tolist() == [6, 7, 8, 4, 5, 6, 7, 8, 4, 5, 5]
    # Per-sample values stay per sample.
    assert batch.advantages.tolist() == [1.0, 0.0, -1.0, 2.0, 0.0] and batch.choice_index == [1, -1, 0, -1, -1]
    flat = torch.log(torch.tensor([0.2, 0.5, 0.6, 0.5, 0.25, 0.2, 0.5, 0.6, 0.5, 0.25, 0.25]))
    out = batch.sample_logprobs(flat)
    assert out[0, 0].item() == pytest.approx(math.log(0.3 / 0.5)) and out[2, 0].item() == pytest.approx(math.log(0.2 / 0.5))
    assert out[4].tolist() == pytest.approx([math.log(0.25), 0.0])


def test_collate_records_the_prefix_every_prompt_shares():
    rules = list(range(100, 120))  # 20 tokens, above the minimum worth sharing
    free = _s(rules + [1, 2], [3])
    choice = TurnSample("g", 0, rules + [1, 5, 6], [7], [0.0], 0.0, choices=[[7], [8]], choice_index=0)
    assert collate([free, choice], pad_id=0).shared_prefix == 21  # the rules, then the common token 1
    # Each row's last prompt token predicts its first scored token, so it is never part of the prefix.
    assert collate([free, _s(rules + [1, 2], [4])], pad_id=0).shared_prefix == 21
    assert collate([free], pad_id=0).shared_prefix == 0  # one row: nothing to share
    assert collate([_s(rules[:10] + [1], [3]), _s(rules[:10] + [2], [3])], pad_id=0).shared_prefix == 0  # too short


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
