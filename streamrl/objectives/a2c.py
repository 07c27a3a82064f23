"""A2C loss (Mnih et al. 2016): policy gradient with a learned baseline."""

from __future__ import annotations

from tensordict import TensorDictBase
from torch import nn

from streamrl.objectives._actor_critic import (
    _UNSET,
    OnPolicyLoss,
    check_coeff,
    resolve_coeffs,
    resolve_networks,
)

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

    TorchRL's other options, as for :class:`PPOLoss`: ``samples_mc_entropy``,
    ``separate_losses``, ``reduction``, ``clip_value`` (the critic's prediction clipped to
    the input's ``state_value +- clip_value``), ``advantage_norm``, ``actor=`` / ``critic=``
    (older names of the networks); ``gamma`` and ``advantage_key`` / ``value_target_key``
    are refused as in TorchRL 0.14. ``functional=False`` holds the networks as plain
    submodules (``loss.actor_network``), as for :class:`PPOLoss`. The coefficients
    (``entropy_coeff``, ``critic_coeff``, ``clip_value``) are scalar buffers on the
    networks' device; a number assigned to one updates it in place.
    """

    _schedulable_buffers = frozenset({"entropy_coeff", "critic_coeff", "clip_value"})

    def __init__(
        self,
        actor_network: nn.Module | None = None,
        critic_network: nn.Module | None = None,
        *,
        entropy_bonus: bool = True,
        samples_mc_entropy: int = 1,
        entropy_coeff: float | None = None,
        critic_coeff: float | None = _UNSET,
        loss_critic_type: str = "smooth_l1",
        normalize_advantage: bool = False,
        advantage_norm: nn.Module | None = None,
        gamma: float | None = None,
        separate_losses: bool = False,
        advantage_key: str | None = None,
        value_target_key: str | None = None,
        functional: bool = True,
        actor: nn.Module | None = None,
        critic: nn.Module | None = None,
        reduction: str | None = None,
        clip_value: float | None = None,
        entropy_coef: float | None = None,
        critic_coef: float | None = None,
    ) -> None:
        actor_network, critic_network = resolve_networks(
            "A2CLoss", actor_network, critic_network, actor, critic, gamma=gamma,
            functional=functional, advantage_key=advantage_key,
            value_target_key=value_target_key,
        )
        clip_value = check_coeff("A2CLoss", "clip_value", clip_value)
        entropy_coeff, critic_coeff = resolve_coeffs(
            "A2CLoss", entropy_coeff, entropy_coef, critic_coeff, critic_coef
        )
        super().__init__(
            actor_network, critic_network, entropy_bonus=entropy_bonus,
            entropy_coeff=entropy_coeff, critic_coeff=critic_coeff,
            loss_critic_type=loss_critic_type, normalize_advantage=normalize_advantage,
            samples_mc_entropy=samples_mc_entropy, separate_losses=separate_losses,
            reduction=reduction, advantage_norm=advantage_norm, functional=functional,
        )
        self.register_coeff_buffer("clip_value", clip_value, device=self._coeff_device)

    def _output_keys(self) -> list[str]:
        critic = ["loss_critic"] if self._critic_loss_on else []
        entropy = ["entropy"] + (["loss_entropy"] if self.entropy_bonus else [])
        return ["loss_objective", *critic, *entropy]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the A2C losses (fills ``advantage``/``value_target`` if missing)."""
        advantage = self.advantage(tensordict)
        dist, log_prob = self.log_prob(tensordict)
        out = {"loss_objective": -(log_prob * advantage)}
        out.update(self.entropy_terms(dist, tensordict))
        if self._critic_loss_on:
            out["loss_critic"] = self.critic_loss(tensordict, self.clip_value,
                                                  per_sample=True)[0]
        return self.output(tensordict, out)
