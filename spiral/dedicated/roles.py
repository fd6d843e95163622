"""Which ranks of a torchrun job train and which play, and the torch.distributed world each side sees."""

from __future__ import annotations

import os
from dataclasses import dataclass

from spiral.errors import SpiralError


@dataclass(frozen=True)
class Roles:
    """Ranks `0 .. learners-1` train; ranks `learners .. world-1` are actors (actor i is rank learners + i)."""

    rank: int
    world: int
    learners: int
    actors: int
    master_addr: str
    master_port: int

    @property
    def is_actor(self) -> bool:
        return self.rank >= self.learners

    @property
    def actor_index(self) -> int:
        return self.rank - self.learners

    def actor_rank(self, index: int) -> int:
        """The job rank of actor `index`."""
        return self.learners + index


def split_job(actor_ranks: int) -> Roles:
    """This process's role, from torchrun's environment and `trainer.actor_ranks`."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world - actor_ranks < 1:
        raise SpiralError(
            f"trainer.layout: dedicated with trainer.actor_ranks={actor_ranks} needs at least {actor_ranks + 1} "
            f"ranks (one learner at least), but the job has {world}: launch with torchrun --nproc_per_node "
            f"{actor_ranks + 1} (or more), or lower trainer.actor_ranks"
        )
    return Roles(rank, world, world - actor_ranks, actor_ranks, os.environ.get("MASTER_ADDR", "127.0.0.1"),
                 int(os.environ.get("MASTER_PORT", "0")))


def enter_role(roles: Roles) -> None:
    """Make torch.distributed's default world this side's own: the learner ranks alone (DeepSpeed and every
    reduction of the learner then see only them), or, on an actor, a private one-process world (an engine that
    builds a process group, like vLLM's external launcher, then builds its own). Call before any group exists."""
    from spiral.learner.distributed import free_port

    if roles.is_actor:
        os.environ.update(RANK="0", LOCAL_WORLD_SIZE="1", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(free_port()))
        # torchrun's agent store serves the whole job; a private world must not join it.
        os.environ.pop("TORCHELASTIC_USE_AGENT_STORE", None)
    else:
        os.environ.update(WORLD_SIZE=str(roles.learners),
                          LOCAL_WORLD_SIZE=str(min(roles.learners, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))))
