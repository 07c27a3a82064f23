"""REINFORCE loss (Williams 1992), with an optional learned baseline."""

from __future__ import annotations

from tensordict import TensorDictBase
from torch import nn

from streamrl.objectives._actor_critic import OnPolicyLoss
from streamrl.objectives.common import _output
from streamrl.objectives.value.common import ValueEstimators

__all__ = ["ReinforceLoss"]


class ReinforceLoss(OnPolicyLoss):
    """REINFORCE: ``loss_actor = -mean(log pi(a|s) * A)``.

    By default ``A`` is the Monte-Carlo return to the end of each trajectory (TD(1)) minus
    the critic's ``V(s)`` when a critic is given (then ``loss_value`` trains it). Without a
    critic, values are zero: ``A`` is the plain discounted return and truncated
    trajectories are not bootstrapped.
    """

    default_value_estimator = ValueEstimators.TD1

    def __init__(
        self,
        actor_network: nn.Module,
        critic_network: nn.Module | None = None,
        *,
        loss_critic_type: str = "smooth_l1",
        normalize_advantage: bool = False,
    ) -> None:
        super().__init__(
            actor_network, critic_network, entropy_bonus=False, entropy_coeff=0.0,
            critic_coeff=1.0, loss_critic_type=loss_critic_type,
            normalize_advantage=normalize_advantage,
        )

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute ``loss_actor`` (and ``loss_value`` with a critic)."""
        advantage = self.advantage(tensordict)
        _, log_prob = self.log_prob(tensordict)
        out = {"loss_actor": -(log_prob * advantage).mean()}
        if self.has_critic:
            out["loss_value"] = self.critic_loss(tensordict)[0]
        return _output(**out)
