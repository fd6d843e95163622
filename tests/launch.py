"""Launching child processes from tests: an environment without this process's torch.distributed
variables, and torchrun command lines."""

from __future__ import annotations

import os
import sys

from spiral.learner.distributed import free_port


def clean_env() -> dict[str, str]:
    """This process's environment without the torch.distributed variables an in-process learner
    test may have set (a child would otherwise try to join that test's one-rank group)."""
    dist_vars = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    return {**{k: v for k, v in os.environ.items() if k not in dist_vars}, "PYTHONUNBUFFERED": "1"}


def torchrun_cmd(ranks: int, *target: str) -> list[str]:
    """torchrun with `ranks` local ranks meeting on a free port, then `target` (a script or `-m module`, and
    its arguments)."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
            "--master_port", str(free_port()), *target]
