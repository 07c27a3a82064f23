"""REINFORCE loss (Williams 1992), with an optional learned baseline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tensordict import TensorDictBase
from torch import nn

from streamrl.objectives._actor_critic import OnPolicyLoss, check_coeff, resolve_networks
from streamrl.objectives._network_calls import NetworkCaller
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

    TorchRL's other options, as for :class:`PPOLoss`: ``separate_losses``, ``reduction``,
    ``clip_value`` (the critic's prediction clipped to the input's ``state_value +-
    clip_value``, a buffer on the networks' device), ``functional=False`` (the networks held
    as plain submodules; incompatible with ``delay_value=True``, whose targets are held
    apart from the module), ``actor=`` / ``critic=`` (older names of the networks);
    ``gamma`` and ``advantage_key`` / ``value_target_key`` are refused as in TorchRL 0.14.

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
    _schedulable_buffers = frozenset({"clip_value"})

    def __init__(
        self,
        actor_network: nn.Module | None = None,
        critic_network: nn.Module | None = None,
        *,
        delay_value: bool = False,
        loss_critic_type: str = "smooth_l1",
        gamma: float | None = None,
        advantage_key: str | None = None,
        value_target_key: str | None = None,
        separate_losses: bool = False,
        functional: bool = True,
        actor: nn.Module | None = None,
        critic: nn.Module | None = None,
        reduction: str | None = None,
        clip_value: float | None = None,
        normalize_advantage: bool = False,
    ) -> None:
        actor_network, critic_network = resolve_networks(
            "ReinforceLoss", actor_network, critic_network, actor, critic, gamma=gamma,
            functional=functional, advantage_key=advantage_key,
            value_target_key=value_target_key,
        )
        if delay_value and critic_network is None:
            raise ValueError("ReinforceLoss: delay_value=True needs a critic_network, found None")
        if delay_value and not functional:
            raise ValueError(
                "ReinforceLoss: delay_value=True needs functional=True (the critic's target "
                "parameters are held apart from the module), found functional=False"
            )
        clip_value = check_coeff("ReinforceLoss", "clip_value", clip_value)
        self.delay_value = bool(delay_value)
        super().__init__(
            actor_network, critic_network, entropy_bonus=False, entropy_coeff=0.0,
            critic_coeff=1.0, loss_critic_type=loss_critic_type,
            normalize_advantage=normalize_advantage, separate_losses=separate_losses,
            reduction=reduction, functional=functional,
        )
        self.register_coeff_buffer("clip_value", clip_value, device=self._coeff_device)
        if self.delay_value:
            self.register_network("critic_network", critic_network, create_target=True)

    def _estimator_value_network(self) -> Callable[[TensorDictBase], Any] | None:
        if self.delay_value:
            return NetworkCaller(self, "critic_network", target=True)
        return super()._estimator_value_network()

    def _output_keys(self) -> list[str]:
        return ["loss_actor"] + (["loss_value"] if self.has_critic else [])

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute ``loss_actor`` (and ``loss_value`` with a critic)."""
        advantage = self.advantage(tensordict)
        _, log_prob = self.log_prob(tensordict)
        out = {"loss_actor": -(log_prob * advantage)}
        if self.has_critic:
            out["loss_value"] = self.critic_loss(tensordict, self.clip_value,
                                                 per_sample=True)[0]
        return self.output(tensordict, out)

