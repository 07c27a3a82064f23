"""TD3 loss (Fujimoto et al. 2018): twin critics, target policy smoothing, delayed actor."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from torch import Tensor, nn

from streamrl.data.specs import Bounded, Composite
from streamrl.objectives import _loss_options as opts
from streamrl.objectives import _sac_common as shared
from streamrl.objectives._utils import check_loss_function
from streamrl.objectives.common import BOOTSTRAP_ESTIMATORS, TD_KEYS, LossModule
from streamrl.objectives.value.common import ValueEstimators

__all__ = ["TD3Loss"]


def _bound(name: str, value: float | Tensor) -> Tensor:
    if isinstance(value, (int, float)):
        return torch.tensor(float(value))
    if isinstance(value, Tensor):
        return value.detach().clone().float()
    raise TypeError(f"{name} must be a float or a tensor, found {type(value).__name__}")


def _resolve_bounds(action_spec: Any, bounds: Any, low: Any, high: Any,
                    owner: str = "TD3Loss") -> tuple[Any, Any]:
    given = [name for name, v in (("action_spec", action_spec), ("bounds", bounds),
                                  ("action_low/action_high", low if low is not None else high))
             if v is not None]
    if len(given) != 1:
        raise ValueError(
            f"{owner} needs the action bounds from exactly one of action_spec, bounds or "
            f"action_low/action_high; found {given or 'none'}"
        )
    if action_spec is not None:
        if isinstance(action_spec, Composite):
            action_spec = action_spec["action"]
        if not isinstance(action_spec, Bounded):
            raise TypeError(
                f"{owner}: action_spec must be a Bounded spec, found {type(action_spec).__name__}"
            )
        return action_spec.low, action_spec.high
    if bounds is not None:
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise ValueError(f"{owner}: bounds must be a (low, high) pair, found {bounds!r}")
        return bounds[0], bounds[1]
    if low is None or high is None:
        raise ValueError(f"{owner}: give both action_low and action_high")
    return low, high


class TD3Loss(LossModule):
    """TD3 loss with ``num_qvalue_nets`` critics run in one vmap call.

    - ``loss_actor = -mean Q_0(s, pi(s))`` (critic frozen);
    - ``loss_qvalue = sum_i mean d(Q_i(s, a), y)``, with
      ``y = r + gamma * (1 - terminated) * min_i Q'_i(s', a')`` and the smoothed target action
      ``a' = clamp(pi'(s') + clamp(eps, -noise_clip, noise_clip), action_low, action_high)``,
      ``eps ~ N(0, policy_noise^2)``.

    **Delayed actor**: the loss computes ``loss_actor`` at every call; the caller applies the
    actor's optimizer step (and the target update) only every ``policy_update_delay`` steps,
    e.g. ``if step % 2 == 0: (out["loss_actor"]).backward(); actor_optim.step()``. Keeping the
    schedule out of the loss keeps every call's output complete and the loss stateless.

    The action bounds come from ``action_spec`` (a bounded spec, or a ``Composite`` holding
    one at ``"action"``), ``bounds=(low, high)``, or ``action_low``/``action_high`` (floats or
    tensors of the action's shape): exactly one of the three. ``td_error`` (max over
    critics) is written into the input.

    TorchRL's shared options (see :class:`SACLoss`): ``separate_losses``, ``reduction``,
    ``use_prioritized_weights`` (key ``priority_weight``), ``deactivate_vmap``; ``gamma``
    and ``priority_key`` are refused as in TorchRL 0.14.

    Output: ``loss_actor``, ``loss_qvalue``, and the detached diagnostics ``pred_value``
    (``[num_qvalue_nets, *batch]``), ``state_action_value_actor`` (the critics on the
    policy's action, same shape), ``next_state_value`` and ``target_value`` (``batch``),
    ``td_error``.
    """

    default_keys = {
        "action": "action",
        "state_action_value": "state_action_value",
        "priority_weight": opts.PRIORITY_WEIGHT_KEY,
        **TD_KEYS,
    }
    default_value_estimator = ValueEstimators.TD0
    supported_value_estimators = BOOTSTRAP_ESTIMATORS

    def __init__(
        self,
        actor_network: nn.Module,
        qvalue_network: nn.Module,
        *,
        action_spec: Any = None,
        bounds: tuple[float | Tensor, float | Tensor] | None = None,
        action_low: float | Tensor | None = None,
        action_high: float | Tensor | None = None,
        num_qvalue_nets: int = 2,
        policy_noise: float = 0.2,
        noise_clip: float = 0.5,
        loss_function: str = "smooth_l1",
        delay_actor: bool = True,
        delay_qvalue: bool = True,
        gamma: float | None = None,
        priority_key: str | None = None,
        separate_losses: bool = False,
        reduction: str | None = None,
        deactivate_vmap: bool = False,
        use_prioritized_weights: str | bool = "auto",
    ) -> None:
        super().__init__()
        opts.apply_options(
            self, gamma=gamma, priority_key=priority_key, reduction=reduction,
            use_prioritized_weights=use_prioritized_weights, separate_losses=separate_losses,
            deactivate_vmap=deactivate_vmap,
        )
        self.loss_function = check_loss_function(loss_function)
        if policy_noise < 0 or noise_clip < 0:
            raise ValueError(
                f"policy_noise and noise_clip must be >= 0, found {policy_noise}, {noise_clip}"
            )
        self.policy_noise = float(policy_noise)
        self.noise_clip = float(noise_clip)
        self.delay_actor = delay_actor
        self.delay_qvalue = delay_qvalue
        action_low, action_high = _resolve_bounds(action_spec, bounds, action_low, action_high,
                                                   type(self).__name__)
        low, high = _bound("action_low", action_low), _bound("action_high", action_high)
        if (low > high).any():
            raise ValueError(f"action_low must be <= action_high, found {low} and {high}")
        self.register_buffer("action_low", low)
        self.register_buffer("action_high", high)
        shared.register_actor_critic(self, actor_network, qvalue_network,
                                     num_qvalue_nets=num_qvalue_nets, delay_qvalue=delay_qvalue,
                                     delay_actor=delay_actor)

    def _actor_action(self, td: TensorDictBase, params: TensorDictBase) -> Tensor:
        return self.network_output("actor_network", td, "action", params)

    def smoothed_target_action(self, next_td: TensorDictBase) -> Tensor:
        """``pi'(s')`` plus clipped Gaussian noise, clamped to the action bounds."""
        action = self._actor_action(
            next_td, self.network_params("actor_network", target=self.delay_actor, detach=True)
        )
        noise = (torch.randn_like(action) * self.policy_noise).clamp(
            -self.noise_clip, self.noise_clip
        )
        low, high = self.action_low.to(action), self.action_high.to(action)
        return torch.maximum(torch.minimum(action + noise, high), low)

    def target_value(self, td: TensorDictBase) -> Tensor:
        """The clipped double-Q target for every transition of ``td`` (no gradient)."""
        return self._target_and_next_value(td)[0]

    def _target_and_next_value(self, td: TensorDictBase) -> tuple[Tensor, Tensor]:
        self._require(td, self._next_key("reward"), self._next_key("done"))
        with torch.no_grad():
            next_td = td.get("next")
            next_action = self.smoothed_target_action(next_td)
            next_q = shared.qvalues_at(
                self, next_td, next_action, shared.critic_params(self, target=True)
            ).min(0).values
        return shared.bootstrap(self, td, next_q), next_q

    in_keys = shared.soft_in_keys_property("qvalue_network")

    def _output_keys(self) -> list[str]:
        return ["loss_actor", "loss_qvalue", "pred_value", "state_action_value_actor",
                "next_state_value", "target_value", "td_error"]

    def _actor_objective(self, tensordict: TensorDictBase, policy_action: Tensor,
                         q_actor: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The per-sample actor loss from the policy's action and the critics' values of it
        (``[copies, *batch]``), and the diagnostics it adds: ``-Q_0(s, pi(s))``."""
        return -q_actor[0], {}

    def _actor_terms(self, tensordict: TensorDictBase
                     ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """The per-sample actor loss, the critics on the policy's action and the actor
        objective's diagnostics."""
        policy_action = self._actor_action(tensordict, self.network_params("actor_network"))
        q_actor = shared.qvalues_at(
            self, tensordict, policy_action, shared.critic_params(self).detach()
        )
        q_actor = q_actor.reshape(q_actor.shape[0], *tensordict.batch_size)
        loss, extra = self._actor_objective(tensordict, policy_action, q_actor)
        return loss, q_actor, extra

    def _value_terms(self, tensordict: TensorDictBase) -> tuple[Tensor, dict[str, Tensor]]:
        """The per-sample critic loss and its diagnostics (writes ``td_error``)."""
        action = self._get(tensordict, "action")
        batch = tensordict.batch_size
        target, next_value = self._target_and_next_value(tensordict)
        pred = shared.qvalues_at(self, tensordict, action, shared.critic_params(self))
        loss_qvalue, td_error = shared.ensemble_regression(self, tensordict, pred, target)
        n = pred.shape[0]
        return loss_qvalue, dict(pred_value=pred.detach().reshape(n, *batch),
                                 next_state_value=next_value.reshape(batch),
                                 target_value=target.reshape(batch), td_error=td_error)

    def actor_loss(self, tensordict: TensorDictBase) -> tuple[Tensor, dict[str, Tensor]]:
        """The actor's loss alone (reduced as :meth:`forward`'s ``loss_actor``) and
        ``{"state_action_value_actor": ...}``: for a caller that steps the actor only every
        ``policy_update_delay`` updates."""
        per_sample, q_actor, extra = self._actor_terms(tensordict)
        out = opts.loss_output(self, tensordict, {"loss_actor": per_sample})
        return out["loss_actor"], {"state_action_value_actor": q_actor.detach(), **extra}

    def value_loss(self, tensordict: TensorDictBase) -> tuple[Tensor, dict[str, Tensor]]:
        """The critics' loss alone (reduced as :meth:`forward`'s ``loss_qvalue``) and its
        diagnostics (``pred_value``, ``next_state_value``, ``target_value``, ``td_error``);
        writes ``td_error`` into ``tensordict``. Spares the actor's forward on the updates
        that do not train it."""
        per_sample, diagnostics = self._value_terms(tensordict)
        out = opts.loss_output(self, tensordict, {"loss_qvalue": per_sample})
        return out["loss_qvalue"], diagnostics

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the actor and critic losses; writes ``td_error`` into ``tensordict``."""
        loss_actor, q_actor, extra = self._actor_terms(tensordict)
        loss_qvalue, diagnostics = self._value_terms(tensordict)
        return opts.loss_output(self, tensordict, {
            "loss_actor": loss_actor,
            "loss_qvalue": loss_qvalue,
        }, dict(
            **extra,
            pred_value=diagnostics["pred_value"],
            state_action_value_actor=q_actor.detach(),
            next_state_value=diagnostics["next_state_value"],
            target_value=diagnostics["target_value"],
            td_error=diagnostics["td_error"],
        ))
