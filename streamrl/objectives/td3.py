"""TD3 loss (Fujimoto et al. 2018): twin critics, target policy smoothing, delayed actor."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import Tensor, nn

from streamrl.objectives.common import TD_KEYS, LossModule, _output
from streamrl.objectives.utils import check_loss_function, distance_loss
from streamrl.objectives.value.common import ValueEstimators

__all__ = ["TD3Loss"]


def _bound(name: str, value: float | Tensor) -> Tensor:
    if isinstance(value, (int, float)):
        return torch.tensor(float(value))
    if isinstance(value, Tensor):
        return value.detach().clone().float()
    raise TypeError(f"{name} must be a float or a tensor, found {type(value).__name__}")


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

    ``action_low``/``action_high`` are floats or tensors of the action's shape. ``td_error``
    (max over critics) is written into the input.
    """

    default_keys = {
        "action": "action",
        "state_action_value": "state_action_value",
        **TD_KEYS,
    }
    default_value_estimator = ValueEstimators.TD0

    def __init__(
        self,
        actor_network: nn.Module,
        qvalue_network: nn.Module,
        *,
        action_low: float | Tensor,
        action_high: float | Tensor,
        num_qvalue_nets: int = 2,
        policy_noise: float = 0.2,
        noise_clip: float = 0.5,
        loss_function: str = "l2",
        delay_actor: bool = True,
        delay_qvalue: bool = True,
    ) -> None:
        super().__init__()
        self.loss_function = check_loss_function(loss_function)
        if policy_noise < 0 or noise_clip < 0:
            raise ValueError(
                f"policy_noise and noise_clip must be >= 0, found {policy_noise}, {noise_clip}"
            )
        self.policy_noise = float(policy_noise)
        self.noise_clip = float(noise_clip)
        self.delay_actor = delay_actor
        self.delay_qvalue = delay_qvalue
        low, high = _bound("action_low", action_low), _bound("action_high", action_high)
        if (low > high).any():
            raise ValueError(f"action_low must be <= action_high, found {low} and {high}")
        self.register_buffer("action_low", low)
        self.register_buffer("action_high", high)
        self.register_network("actor_network", actor_network, create_target=delay_actor)
        self.register_network("qvalue_network", qvalue_network, num_copies=num_qvalue_nets,
                              create_target=delay_qvalue)

    def _qvalues(self, td: TensorDictBase, action: Tensor, params: TensorDictBase) -> Tensor:
        work = td.copy()
        work.set(self._keys["action"], action)
        return self._get(self.vmap_network("qvalue_network", work, params), "state_action_value")

    def _actor_action(self, td: TensorDictBase, params: TensorDictBase) -> Tensor:
        out = self.call_network("actor_network", td.copy(), params)
        return self._get(out, "action")

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
        self._require(td, self._next_key("reward"), self._next_key("done"))
        with torch.no_grad():
            next_td = td.get("next")
            next_action = self.smoothed_target_action(next_td)
            next_q = self._qvalues(
                next_td, next_action,
                self.network_params("qvalue_network", target=self.delay_qvalue, detach=True),
            ).min(0).values
            work = td.copy()
            work.set(("next", "state_value"), next_q)
            return self.value_estimator.value_estimate(work)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the actor and critic losses; writes ``td_error`` into ``tensordict``."""
        action = self._get(tensordict, "action")
        policy_action = self._actor_action(tensordict, self.network_params("actor_network"))
        q_actor = self._qvalues(
            tensordict, policy_action, self.network_params("qvalue_network", detach=True)
        )
        loss_actor = -q_actor[0].mean()
        target = self.target_value(tensordict)
        pred = self._qvalues(tensordict, action, self.network_params("qvalue_network"))
        if pred.shape[1:] != target.shape:
            raise ValueError(
                f"TD3Loss: {self._keys['state_action_value']!r} has shape "
                f"{tuple(pred.shape[1:])} but the reward has shape {tuple(target.shape)}"
            )
        per_net = distance_loss(pred, target.expand_as(pred), self.loss_function)
        loss_qvalue = per_net.reshape(pred.shape[0], -1).mean(-1).sum()
        td_error = (pred.detach() - target).abs().max(0).values.reshape(tensordict.batch_size)
        tensordict.set(self._keys["priority"], td_error)
        return _output(
            loss_actor=loss_actor,
            loss_qvalue=loss_qvalue,
            pred_value=pred.detach().mean(0).reshape(tensordict.batch_size),
            target_value=target.reshape(tensordict.batch_size),
            td_error=td_error,
        )
