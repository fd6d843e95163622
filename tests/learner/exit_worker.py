"""One rank that joins the group through spiral, takes part in one collective, and simply returns
(run by torchrun from test_distributed.py)."""

import torch
import torch.distributed as dist

from spiral.learner.distributed import init_distributed

if __name__ == "__main__":
    init_distributed()
    gathered = [torch.empty(1) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, torch.tensor([float(dist.get_rank())]))
    assert [g.item() for g in gathered] == [float(r) for r in range(dist.get_world_size())]
