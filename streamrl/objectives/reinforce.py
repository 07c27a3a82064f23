"""REINFORCE loss (Williams 1992), with an optional learned baseline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tensordict import TensorDictBase
from torch import nn

from streamrl.objectives._actor_critic import OnPolicyLoss
from streamrl.objectives.common import LossModule
from streamrl.objectives.value.common import ValueEstimators

__all__ = ["ReinforceLoss"]


class ReinforceLoss(OnPolicyLoss):
    """REINFORCE: ``loss_actor = -mean(log pi(a|s) * A)``.

    By default ``A`` is the Monte-Carlo return to the end of each trajectory (TD(1)) minus
    the critic's ``V(s)`` when a critic is given (then ``loss_value`` trains it). Without a
    critic, values are zero: ``A`` is the plain discounted return and truncated
    trajectories are not bootstrapped.

    With ``delay_value=True`` (needs a critic) the loss keeps target parameters of the
    critic (``loss.target_critic_network_params``, updated with
    :class:`~streamrl.objectives.SoftUpdate`/:class:`~streamrl.objectives.HardUpdate`) and the
    value estimator computes the advantage with them; ``loss_value`` still trains the live
    critic.

    >>> from tensordict.nn import TensorDictModule
    >>> from streamrl.modules import ProbabilisticActor, TanhNormal, NormalParamExtractor
    >>> actor = ProbabilisticActor(
    ...     TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()),
    ...                      ["observation"], ["loc", "scale"]),
    ...     in_keys=["loc", "scale"], distribution_class=TanhNormal)
    >>> critic = TensorDictModule(nn.Linear(3, 1), ["observation"], ["state_value"])
    >>> loss = ReinforceLoss(actor, critic, delay_value=True)
    >>> loss.target_network_names
    ('critic_network',)
    """

    default_value_estimator = ValueEstimators.TD1

    def __init__(
        self,
        actor_network: nn.Module,
        critic_network: nn.Module | None = None,
        *,
        delay_value: bool = False,
        loss_critic_type: str = "smooth_l1",
        normalize_advantage: bool = False,
    ) -> None:
        if delay_value and critic_network is None:
            raise ValueError("ReinforceLoss: delay_value=True needs a critic_network, found None")
        self.delay_value = bool(delay_value)
        super().__init__(
            actor_network, critic_network, entropy_bonus=False, entropy_coeff=0.0,
            critic_coeff=1.0, loss_critic_type=loss_critic_type,
            normalize_advantage=normalize_advantage,
        )
        if self.delay_value:
            self.register_network("critic_network", critic_network, create_target=True)

    def _estimator_value_network(self) -> Callable[[TensorDictBase], Any] | None:
        if self.delay_value:
            return _TargetCaller(self, "critic_network")
        return super()._estimator_value_network()

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute ``loss_actor`` (and ``loss_value`` with a critic)."""
        advantage = self.advantage(tensordict)
        _, log_prob = self.log_prob(tensordict)
        out = {"loss_actor": -(log_prob * advantage)}
        if self.has_critic:
            out["loss_value"] = self.critic_loss(tensordict, per_sample=True)[0]
        return self.output(tensordict, out)


class _TargetCaller:
    """Calls one of a loss's networks with its target parameters (for the value estimator)."""

    def __init__(self, loss: LossModule, name: str) -> None:
        self.loss = loss
        self.name = name

    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        return self.loss.call_network(
            self.name, td, self.loss.network_params(self.name, target=True)
        )
