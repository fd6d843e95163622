"""The run's seeding scheme: every source of chance gets its seed from the run seed and a few keys."""

from __future__ import annotations

import random


def derive_seed(*keys: object) -> int:
    """A 31-bit seed from any keys; stable across processes (string seeding hashes with SHA-512)."""
    return random.Random("/".join(map(str, keys))).getrandbits(31)
