"""Turn `TurnSample`s into padded tensors and split them into minibatches and micro-batches.

Pure data layout, no model. Each sample becomes one row (prompt + completion), or, for a sample
played with `rollout.action_constraint: choice`, one row per legal move; rows are right-padded and
the scoring mask is set at the position whose hidden state predicts a completion token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from spiral.types import TurnSample


@dataclass
class Batch:
    """Padded rows of a list of samples; row position t's hidden state predicts `targets[:, t]`."""

    input_ids: Tensor  # [R, L] prompt + completion per row, right-padded
    attention_mask: Tensor  # [R, L] 1 on real tokens
    targets: Tensor  # [R, L] the next token (input_ids shifted left), pad elsewhere
    score_mask: Tensor  # [R, L] bool: targets[r, t] is a completion token
    advantages: Tensor  # [B] float32, one per sample
    sample_mask: Tensor  # [B, T] bool: the sample's learning tokens (one for a choice sample)
    rows: list[list[int]]  # rows of each sample
    choice_index: list[int]  # per sample: the chosen row among its rows, or -1 for a free completion

    @property
    def num_sequences(self) -> int:
        return len(self.rows)

    def to(self, device: torch.device | str) -> Batch:
        tensors = (self.input_ids, self.attention_mask, self.targets, self.score_mask, self.advantages,
                   self.sample_mask)
        return Batch(*(t.to(device) for t in tensors), self.rows, self.choice_index)

    def sample_logprobs(self, flat: Tensor) -> Tensor:
        """[B, T] per-sample log-probs (zero-padded, see `sample_mask`) from per-scored-token values.

        `flat` holds one value per true entry of `score_mask`, in row order. A free sample gets its
        completion's token log-probs; a choice sample gets one value, the log-prob of the chosen move
        renormalised over the legal moves (each move's log-prob is the sum over its tokens).
        Differentiable.
        """
        per_row = flat.new_zeros(self.score_mask.shape)
        per_row[self.score_mask] = flat
        pieces = []
        for rows, choice in zip(self.rows, self.choice_index):
            if choice < 0:
                pieces.append(per_row[rows[0]][self.score_mask[rows[0]]])
            else:
                totals = (per_row[rows] * self.score_mask[rows]).sum(dim=1)
                pieces.append(torch.log_softmax(totals, dim=0)[choice : choice + 1])
        return pad_sequence(pieces, batch_first=True)


def _rows_of(sample: TurnSample, index: int) -> tuple[list[list[int]], int]:
    if sample.choices is None:
        return [list(sample.completion_ids)], -1
    if not sample.choices or not 0 <= sample.choice_index < len(sample.choices):
        raise ValueError(f"sample {index} ({sample.game}): choice_index {sample.choice_index} is not an index into "
                         f"its {len(sample.choices)} choices")
    return [list(c) for c in sample.choices], sample.choice_index


def collate(samples: Sequence[TurnSample], pad_id: int) -> Batch:
    """Right-padded rows for `samples`; refuses samples without a prompt or with an empty completion."""
    if not samples:
        raise ValueError("collate needs at least one sample")
    sequences: list[tuple[list[int], list[int]]] = []
    rows, choice_index, learn_tokens = [], [], []
    for i, s in enumerate(samples):
        completions, choice = _rows_of(s, i)
        if not s.prompt_ids or not all(completions):
            raise ValueError(f"sample {i} ({s.game}, seat {s.seat}) has an empty prompt or completion")
        rows.append(list(range(len(sequences), len(sequences) + len(completions))))
        sequences.extend((list(s.prompt_ids), c) for c in completions)
        choice_index.append(choice)
        learn_tokens.append(1 if choice >= 0 else len(completions[0]))

    length = max(len(p) + len(c) for p, c in sequences)
    input_ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    score_mask = torch.zeros((len(sequences), length), dtype=torch.bool)
    for r, (prompt, completion) in enumerate(sequences):
        p, c = len(prompt), len(completion)
        input_ids[r, : p + c] = torch.tensor(prompt + completion, dtype=torch.long)
        attention_mask[r, : p + c] = 1
        # Hidden states at p-1 … p+c-2 predict completion tokens p … p+c-1.
        score_mask[r, p - 1 : p + c - 1] = True
    targets = torch.full_like(input_ids, pad_id)
    targets[:, :-1] = input_ids[:, 1:]
    advantages = torch.tensor([float(s.advantage) for s in samples], dtype=torch.float32)
    sample_mask = torch.arange(max(learn_tokens))[None, :] < torch.tensor(learn_tokens)[:, None]
    return Batch(input_ids, attention_mask, targets, score_mask, advantages, sample_mask, rows, choice_index)


def learning_tokens(sample: TurnSample) -> int:
    """How many log-probs a sample contributes to the loss (1 for a choice sample)."""
    return 1 if sample.choices is not None else len(sample.completion_ids)


def split_even(items: Sequence, parts: int) -> list[list]:
    """`parts` contiguous chunks whose sizes differ by at most one (empty chunks when too few items)."""
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    base, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + base + (1 if i < extra else 0)
        out.append(list(items[start:end]))
        start = end
    return out


def micro_batches(indices: Sequence[int], micro_batch_size: int) -> list[list[int]]:
    """Consecutive chunks of at most `micro_batch_size` indices."""
    if micro_batch_size < 1:
        raise ValueError(f"micro_batch_size must be >= 1, got {micro_batch_size}")
    return [list(indices[i : i + micro_batch_size]) for i in range(0, len(indices), micro_batch_size)]


def shuffled_order(n: int, seed: int) -> list[int]:
    """A permutation of range(n) fixed by `seed` (the same on every rank and every run)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator).tolist()
