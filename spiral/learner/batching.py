"""Turn `TurnSample`s into padded tensors and split them into minibatches and micro-batches.

Pure data layout, no model. Each sample becomes one right-padded row, except that samples whose rows would
be identical share one (in self-play many turns repeat exactly, e.g. a Kuhn hand's first move with the same
card), so the learner runs each distinct row once and gradients from every sample add up in it. A free
sample's row is its prompt + completion. A sample played with `rollout.action_constraint: choice` packs its
prompt and then every legal move as a branch: a branch's tokens attend to the prompt and to their own branch
only (`tree_attention_mask`) and their positions continue from the prompt's end, so each move is scored
exactly as if it stood alone after the prompt, while the prompt is computed once instead of once per move.
Leading tokens that every row shares (a game's rules) are recorded as `shared_prefix`, so the scorer can
compute them once for the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from spiral.models.prefix import shared_prefix_length
from spiral.types import TurnSample

PAD_BRANCH = -1  # branch id of padding
PROMPT_BRANCH = 0  # branch id of the prompt and of a free completion; moves are 1, 2, ...


@dataclass
class Batch:
    """One row per distinct sample (R rows for B samples); the scored tokens are listed, sample by sample, as
    (row, column of the predicting hidden state, target)."""

    input_ids: Tensor  # [R, L] right-padded
    position_ids: Tensor  # [R, L]
    branch_ids: Tensor  # [R, L] PAD_BRANCH, PROMPT_BRANCH, or k >= 1 for the k-th legal move
    score_rows: Tensor  # [N]
    score_cols: Tensor  # [N]
    score_targets: Tensor  # [N]
    advantages: Tensor  # [B] float32, one per sample
    sample_mask: Tensor  # [B, T] bool: the sample's learning tokens (one for a choice sample)
    branch_lengths: list[list[int]]  # per sample: scored tokens per branch (a free sample: [completion length])
    choice_index: list[int]  # per sample: the chosen move, or -1 for a free completion
    shared_prefix: int = 0  # leading columns identical in every row, all before any scored hidden state

    @property
    def has_choices(self) -> bool:
        """Whether any row packs several moves (and so needs `tree_attention_mask`)."""
        return any(c >= 0 for c in self.choice_index)

    def to(self, device: torch.device | str) -> Batch:
        tensors = ("input_ids", "position_ids", "branch_ids", "score_rows", "score_cols", "score_targets",
                   "advantages", "sample_mask")
        return replace(self, **{name: getattr(self, name).to(device) for name in tensors})

    def sample_logprobs(self, flat: Tensor) -> Tensor:
        """[B, T] per-sample log-probs (zero-padded, see `sample_mask`) from one value per scored token.

        A free sample gets its completion's token log-probs; a choice sample gets one value, the log-prob
        of the chosen move renormalised over the legal moves (a move's log-prob is the sum over its
        tokens). Differentiable.
        """
        pieces = [values if choice < 0 else values[choice : choice + 1] for choice, values in self._per_sample(flat)]
        return pad_sequence(pieces, batch_first=True)

    def sample_entropies(self, flat_logprobs: Tensor, flat_entropy: Tensor) -> Tensor:
        """[B, T] the policy's entropy (nats) at each learning token, aligned with `sample_logprobs`: over
        the vocabulary for a free sample's tokens (`flat_entropy`, one value per scored token), over the
        legal moves for a choice sample (from `flat_logprobs`). Differentiable."""
        pieces = [entropy if choice < 0 else -(logp.exp() * logp).sum()[None]
                  for (choice, logp), entropy in zip(self._per_sample(flat_logprobs), self._slices(flat_entropy))]
        return pad_sequence(pieces, batch_first=True)

    def move_logprobs(self, flat: Tensor) -> list[Tensor]:
        """Per sample: a choice sample's log-probs of all its legal moves, renormalised over them (a free
        sample: its completion's token log-probs). Differentiable."""
        return [values for _, values in self._per_sample(flat)]

    def sample_kl(self, flat_logprobs: Tensor, reference: Sequence[Tensor]) -> Tensor:
        """[B, T] KL(π ‖ ref) over the legal moves at each choice sample's learning token, from the policy's
        per-token log-probs and the reference's `move_logprobs` (one tensor per sample). Differentiable."""
        pieces = []
        for (choice, logp), ref in zip(self._per_sample(flat_logprobs), reference, strict=True):
            if choice < 0:
                raise ValueError("an exact KL over the legal moves needs choice samples, not free completions")
            pieces.append((logp.exp() * (logp - ref.to(logp.device, logp.dtype))).sum()[None])
        return pad_sequence(pieces, batch_first=True)

    def _slices(self, flat: Tensor) -> Iterator[Tensor]:
        """Each sample's run of per-scored-token values."""
        offset = 0
        for lengths in self.branch_lengths:
            yield flat[offset : offset + sum(lengths)]
            offset += sum(lengths)

    def _per_sample(self, flat: Tensor) -> Iterator[tuple[int, Tensor]]:
        """(choice index, values) per sample: a free sample's token values, or a choice sample's move
        log-probs renormalised over its legal moves."""
        for lengths, choice, values in zip(self.branch_lengths, self.choice_index, self._slices(flat)):
            if choice >= 0:
                values = torch.log_softmax(torch.stack([v.sum() for v in values.split(lengths)]), dim=0)
            yield choice, values


def tree_attention_mask(branch_ids: Tensor) -> Tensor:
    """[B, 1, L, L] bool, True where query i may attend to key j: causal, the key is real, and the key is
    in the prompt or in the query's own branch."""
    length = branch_ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=branch_ids.device).tril()
    keys = branch_ids[:, None, :]
    visible = (keys == PROMPT_BRANCH) | (branch_ids[:, :, None] == keys)
    return (causal & visible & (keys != PAD_BRANCH))[:, None]


def _branches_of(sample: TurnSample, index: int) -> tuple[list[list[int]], int]:
    if sample.choices is None:
        return [list(sample.completion_ids)], -1
    if not sample.choices or not 0 <= sample.choice_index < len(sample.choices):
        raise ValueError(f"sample {index} ({sample.game}): choice_index {sample.choice_index} is not an index into "
                         f"its {len(sample.choices)} choices")
    return [list(c) for c in sample.choices], sample.choice_index


def collate(samples: Sequence[TurnSample], pad_id: int) -> Batch:
    """One right-padded row per distinct sample (see the module docstring); refuses samples without a prompt
    or with an empty completion."""
    if not samples:
        raise ValueError("collate needs at least one sample")
    rows: list[tuple[list[int], list[int], list[int]]] = []  # tokens, positions, branch ids
    row_of: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}  # (tokens, branch ids) -> row
    score_rows, score_cols, score_targets = [], [], []
    branch_lengths, choice_index = [], []
    for i, s in enumerate(samples):
        branches, choice = _branches_of(s, i)
        if not s.prompt_ids or not all(branches):
            raise ValueError(f"sample {i} ({s.game}, seat {s.seat}) has an empty prompt or completion")
        p = len(s.prompt_ids)
        tokens, positions = list(s.prompt_ids), list(range(p))
        ids = [PROMPT_BRANCH] * p
        cols = []
        for k, branch in enumerate(branches, start=1):
            start = len(tokens)
            # The prompt's last hidden state predicts every branch's first token; then each token its next.
            cols += [p - 1] + list(range(start, start + len(branch) - 1))
            score_targets += branch
            tokens += branch
            positions += range(p, p + len(branch))
            ids += [PROMPT_BRANCH if choice < 0 else k] * len(branch)
        # Positions follow from the branch ids, so tokens and branch ids identify a row.
        r = row_of.setdefault((tuple(tokens), tuple(ids)), len(rows))
        if r == len(rows):
            rows.append((tokens, positions, ids))
        score_rows += [r] * len(cols)
        score_cols += cols
        branch_lengths.append([len(b) for b in branches])
        choice_index.append(choice)

    length = max(len(t) for t, _, _ in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), length), dtype=torch.long)
    branch_ids = torch.full((len(rows), length), PAD_BRANCH, dtype=torch.long)
    for r, (tokens, positions, ids) in enumerate(rows):
        input_ids[r, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        position_ids[r, : len(tokens)] = torch.tensor(positions, dtype=torch.long)
        branch_ids[r, : len(tokens)] = torch.tensor(ids, dtype=torch.long)
    learn_tokens = [learning_tokens(s) for s in samples]
    return Batch(
        input_ids, position_ids, branch_ids,
        torch.tensor(score_rows, dtype=torch.long), torch.tensor(score_cols, dtype=torch.long),
        torch.tensor(score_targets, dtype=torch.long),
        torch.tensor([float(s.advantage) for s in samples], dtype=torch.float32),
        torch.arange(max(learn_tokens))[None, :] < torch.tensor(learn_tokens)[:, None],
        branch_lengths, choice_index,
        # Every row's last prompt token predicts its first scored token, so it stays out of the prefix.
        shared_prefix_length([s.prompt_ids for s in samples], min(len(s.prompt_ids) for s in samples) - 1),
    )


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
