"""One rank of the 2-process learner test (run by torchrun from test_distributed.py).

Each rank updates on its own half of the samples, then saves its streamed weights and a checkpoint.
"""

import sys
from pathlib import Path

import torch

from spiral.learner import distributed as dist_utils
from spiral.learner.checkpoint import save_checkpoint
from spiral.learner.learner import Learner
from tests.learner.helpers import make_samples, small_config


def main() -> None:
    out, stage, model_path = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    learner = Learner(small_config(zero_stage=stage), model_path)
    rank, world = dist_utils.rank(), dist_utils.world_size()
    samples = make_samples(6)[rank::world]
    metrics = learner.update(samples)
    weights = {k: v.detach().clone().cpu() for k, v in learner.named_weights(bucket_mb=1)}
    save_checkpoint(out / "run", 1, learner, {"rank_count": world})
    torch.save({"weights": weights, "metrics": metrics, "world": world}, out / f"rank-{rank}.pt")


if __name__ == "__main__":
    main()
