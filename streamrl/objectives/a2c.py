"""A2C loss (Mnih et al. 2016): policy gradient with a learned baseline."""

from __future__ import annotations

from tensordict import TensorDictBase
from torch import nn

from streamrl.objectives._actor_critic import OnPolicyLoss
from streamrl.objectives.common import _output

__all__ = ["A2CLoss"]


class A2CLoss(OnPolicyLoss):
    """A2C: ``loss_objective = -mean(log pi(a|s) * A)``, plus ``loss_critic`` and
    ``loss_entropy``.

    ``advantage`` and ``value_target`` are read from the input or computed by the value
    estimator (GAE by default) with the critic. The critic loss is
    ``critic_coef * mean d(V(s), value_target)``; the entropy bonus is
    ``-entropy_coef * H``.
    """

    def __init__(
        self,
        actor_network: nn.Module,
        critic_network: nn.Module | None = None,
        *,
        entropy_bonus: bool = True,
        entropy_coef: float = 0.01,
        critic_coef: float = 1.0,
        loss_critic_type: str = "smooth_l1",
        normalize_advantage: bool = False,
    ) -> None:
        super().__init__(
            actor_network, critic_network, entropy_bonus=entropy_bonus,
            entropy_coef=entropy_coef, critic_coef=critic_coef,
            loss_critic_type=loss_critic_type, normalize_advantage=normalize_advantage,
        )

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the A2C losses (fills ``advantage``/``value_target`` if missing)."""
        advantage = self.advantage(tensordict)
        dist, log_prob = self.log_prob(tensordict)
        out = {"loss_objective": -(log_prob * advantage).mean()}
        out.update(self.entropy_terms(dist, tensordict))
        if self.has_critic:
            out["loss_critic"] = self.critic_loss(tensordict)
        return _output(**out)
