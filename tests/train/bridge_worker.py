"""One rank of the 2-learner + 1-actor bridge test (run by torchrun from test_dedicated.py).

The learners take one PPO step and broadcast their weights in 1 MiB buckets; the actor loads them into an HF
engine. Each side saves what it holds: the learners their exported weights, the actor its engine's parameters.
"""

import sys
from pathlib import Path

import torch

from spiral.dedicated.bridge import Bridge
from spiral.dedicated.roles import enter_role, split_job
from spiral.learner import distributed as dist_utils
from tests.learner.helpers import make_samples, small_config


def main() -> None:
    out, stage, model_path = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    cfg = small_config(zero_stage=stage, sync_bucket_mb=1, layout="dedicated", actor_ranks=1)
    roles = split_job(cfg.trainer.actor_ranks)
    enter_role(roles)
    if roles.is_actor:
        from spiral.rollout.hf_engine import HFEngine

        engine = HFEngine(model_path, dtype="float32")
        header, stream = Bridge(roles, 600).recv_weights()
        engine.load_weights(stream)
        params = {k: v.detach().clone() for k, v in engine.model.named_parameters()}
        torch.save({"header": header, "weights": params}, out / "actor.pt")
        return
    from spiral.dedicated.learner_loop import publish_weights
    from spiral.learner.learner import Learner

    dist_utils.init_distributed()
    bridge = Bridge(roles, 600) if dist_utils.is_main() else None
    learner = Learner(cfg, model_path)
    learner.update(make_samples(6)[dist_utils.rank()::dist_utils.world_size()])
    publish_weights(learner, bridge, {"version": 1})
    weights = {k: v.detach().clone().cpu() for k, v in learner.named_weights()}
    buckets = sum(1 for _ in learner.weight_buckets())
    torch.save({"weights": weights, "buckets": buckets, "world": dist_utils.world_size()},
               out / f"learner-{dist_utils.rank()}.pt")


if __name__ == "__main__":
    main()
