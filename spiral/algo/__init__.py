"""SPIRAL's learning rules as pure functions: role-conditioned advantages (RAE) and the PPO-clip loss.

No torch.distributed and no model code here; callers pass plain values and tensors.
"""

from spiral.algo.ppo import ppo_loss
from spiral.algo.rae import RoleBaselines, rae_advantages

__all__ = ["RoleBaselines", "ppo_loss", "rae_advantages"]
