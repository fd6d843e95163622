"""`trainer.layout: dedicated`: give each rank of the torchrun job its role and run it."""

from __future__ import annotations

from pathlib import Path

from spiral.config import SpiralConfig
from spiral.dedicated.bridge import Bridge
from spiral.dedicated.roles import enter_role, split_job
from spiral.learner import distributed as dist
from spiral.models import resolve_model_path


def train_dedicated(cfg: SpiralConfig) -> Path:
    """Run this rank's side of a dedicated-layout job (see `spiral.dedicated`); returns the run directory."""
    roles = split_job(cfg.trainer.actor_ranks)
    enter_role(roles)
    model_path = resolve_model_path(cfg.model.path, seed=cfg.run.seed)
    if roles.is_actor:
        from spiral.dedicated.actor import Actor

        Actor(cfg, model_path, Bridge(roles, cfg.trainer.bridge_timeout_s), roles.actor_index).run()
        return Path(cfg.run.dir)
    from spiral.dedicated.learner_loop import LearnerLoop

    dist.init_distributed()
    bridge = Bridge(roles, cfg.trainer.bridge_timeout_s) if dist.is_main() else None
    return LearnerLoop(cfg, model_path, bridge).run()
