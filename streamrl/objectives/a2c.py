"""A2C loss (Mnih et al. 2016): policy gradient with a learned baseline."""

from __future__ import annotations

from tensordict import TensorDictBase
from torch import nn

from streamrl.objectives._actor_critic import _UNSET, OnPolicyLoss, resolve_coeffs
from streamrl.objectives.common import _output

__all__ = ["A2CLoss"]


class A2CLoss(OnPolicyLoss):
    """A2C: ``loss_objective = -mean(log pi(a|s) * A)``, plus ``loss_critic`` and
    ``loss_entropy``.

    ``advantage`` and ``value_target`` are read from the input or computed by the value
    estimator (GAE by default) with the critic. The critic loss is
    ``critic_coeff * mean d(V(s), value_target)`` (``critic_coeff=None`` leaves it out);
    the entropy bonus is ``-entropy_coeff * H`` (``entropy_coeff=None`` means 0.01).
    ``entropy_coef``/``critic_coef`` are the older spellings (give one of each pair).

    Output: ``loss_objective``, ``loss_critic``, ``loss_entropy``, ``entropy``.
    """

    def __init__(
        self,
        actor_network: nn.Module,
        critic_network: nn.Module | None = None,
        *,
        entropy_bonus: bool = True,
        entropy_coeff: float | None = None,
        critic_coeff: float | None = _UNSET,
        loss_critic_type: str = "smooth_l1",
        normalize_advantage: bool = False,
        entropy_coef: float | None = None,
        critic_coef: float | None = None,
    ) -> None:
        entropy_coeff, critic_coeff = resolve_coeffs(
            "A2CLoss", entropy_coeff, entropy_coef, critic_coeff, critic_coef
        )
        super().__init__(
            actor_network, critic_network, entropy_bonus=entropy_bonus,
            entropy_coeff=entropy_coeff, critic_coeff=critic_coeff,
            loss_critic_type=loss_critic_type, normalize_advantage=normalize_advantage,
        )

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the A2C losses (fills ``advantage``/``value_target`` if missing)."""
        advantage = self.advantage(tensordict)
        dist, log_prob = self.log_prob(tensordict)
        out = {"loss_objective": -(log_prob * advantage).mean()}
        out.update(self.entropy_terms(dist, tensordict))
        if self._critic_loss_on:
            out["loss_critic"] = self.critic_loss(tensordict)[0]
        return _output(**out)
