"""Prompt prefixes a whole batch shares (a game's rules, say): how long they are, and computing one once with
its KV cache repeated for every row. The learner does both when it scores and trains; the HF engine uses the
length only and reads the prefix once through cascade attention (`spiral.models.cascade`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor, nn
    from transformers import DynamicCache

# Below this many shared tokens the extra forward call costs more than it saves.
MIN_SHARED_PREFIX = 16


def shared_prefix_length(seqs: Sequence[Sequence[int]], limit: int) -> int:
    """How many leading tokens all `seqs` share, at most `limit`; 0 for a single sequence or when
    fewer than `MIN_SHARED_PREFIX` are shared."""
    if len(seqs) < 2:
        return 0
    # commonprefix compares element-wise, so it works on token-id lists as well as on strings.
    shared = min(len(os.path.commonprefix([list(s) for s in seqs])), limit)
    return shared if shared >= MIN_SHARED_PREFIX else 0


def fill_shared_prefix(decoder: nn.Module, prefix_ids: Tensor, rows: int, cache: DynamicCache) -> None:
    """Run the 1-D `prefix_ids` through `decoder` once into `cache`, then repeat the cache for `rows` rows.

    Differentiable when gradients are on: each row's share of the gradient flows back into the one
    prefix computation.
    """
    decoder(input_ids=prefix_ids[None], past_key_values=cache, use_cache=True)
    cache.batch_repeat_interleave(rows)
