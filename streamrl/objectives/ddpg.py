"""DDPG loss (Lillicrap et al. 2016): deterministic actor, Q-value critic."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import nn

from streamrl.objectives import _loss_options as opts
from streamrl.objectives._utils import (
    check_loss_function,
    distance_loss,
    sample_shape,
    to_batch_shape,
)
from streamrl.objectives.common import BOOTSTRAP_ESTIMATORS, TD_KEYS, LossModule
from streamrl.objectives.value.common import ValueEstimators

__all__ = ["DDPGLoss"]


class DDPGLoss(LossModule):
    """DDPG loss: ``loss_actor = -Q(s, pi(s))`` and ``loss_value = d(Q(s, a), target)``.

    The target is built by the value estimator (TD(0) by default) from
    ``Q'(s', pi'(s'))``, with the target critic (``delay_value=True``) and the target
    actor (``delay_actor=True``) or the live actor, detached. The actor loss runs the critic
    with detached parameters, so it moves only the actor; the value loss moves only the
    critic. ``td_error = |Q(s, a) - target|`` is written into the input for prioritized
    replay.

    Args:
        actor_network: writes ``action`` from the observation.
        value_network: reads observation and ``action``, writes ``state_action_value``.
        loss_function: ``"l2"`` (default), ``"l1"`` or ``"smooth_l1"``.
        delay_actor: keep target actor parameters (default False).
        delay_value: keep target critic parameters (default True).
        separate_losses: parameters the critic shares with the actor are trained by the
            actor loss only (the value loss sees them detached).
        reduction, use_prioritized_weights: as for :class:`SACLoss` (weights read at the
            ``priority_weight`` key); ``gamma`` is refused as in TorchRL 0.14 (use
            :meth:`make_value_estimator`).

    Output: ``loss_actor``, ``loss_value``, ``pred_value``, ``target_value``,
    ``pred_value_max``, ``target_value_max``, ``td_error``.
    """

    default_keys = {
        "action": "action",
        "state_action_value": "state_action_value",
        "priority_weight": opts.PRIORITY_WEIGHT_KEY,
        **TD_KEYS,
    }
    default_value_estimator = ValueEstimators.TD0
    supported_value_estimators = BOOTSTRAP_ESTIMATORS
    _estimator_key_map = {
        "reward": "reward",
        "done": "done",
        "terminated": "terminated",
        "state_action_value": "value",
    }

    def __init__(
        self,
        actor_network: nn.Module,
        value_network: nn.Module,
        *,
        loss_function: str = "l2",
        delay_actor: bool = False,
        delay_value: bool = True,
        gamma: float | None = None,
        separate_losses: bool = False,
        reduction: str | None = None,
        use_prioritized_weights: str | bool = "auto",
    ) -> None:
        super().__init__()
        opts.apply_options(self, gamma=gamma, reduction=reduction,
                           use_prioritized_weights=use_prioritized_weights,
                           separate_losses=separate_losses)
        self.loss_function = check_loss_function(loss_function)
        self.delay_actor = delay_actor
        self.delay_value = delay_value
        self.register_network("actor_network", actor_network, create_target=delay_actor)
        self.register_network("value_network", value_network, create_target=delay_value)

    def _estimator_value_key(self) -> NestedKey:
        return self._keys["state_action_value"]

    def _q(self, td: TensorDictBase, params: TensorDictBase) -> torch.Tensor:
        out = self.call_network("value_network", td, params)
        return self._get(out, "state_action_value")

    def loss_actor(self, td: TensorDictBase) -> torch.Tensor:
        """``-Q(s, pi(s))`` averaged; gradients reach the actor only."""
        return self._actor_per_sample(td).mean()

    def _actor_per_sample(self, td: TensorDictBase) -> torch.Tensor:
        work = self.call_network("actor_network", td.copy())
        q = self._q(work, self.network_params("value_network", detach=True))
        return -to_batch_shape(q, self._sample_shape(td), "state_action_value", "DDPGLoss")

    def _sample_shape(self, td: TensorDictBase) -> torch.Size:
        """The batch shape, followed by the agent dims of a multi-agent group's rewards
        (``[*batch, n_agents, 1]``: one loss term per agent, as TorchRL's MADDPG)."""
        return sample_shape(td, self._next_key("reward"))

    def target_value(self, td: TensorDictBase) -> torch.Tensor:
        """The value target for every transition of ``td`` (no gradient)."""
        self._require(td, self._next_key("reward"), self._next_key("done"))
        with torch.no_grad():
            next_td = td.get("next").copy()
            next_td = self.call_network(
                "actor_network", next_td,
                self.network_params("actor_network", target=self.delay_actor, detach=True),
            )
            next_q = self._q(
                next_td,
                self.network_params("value_network", target=self.delay_value, detach=True),
            )
            return self.value_estimator.value_estimate(td, next_value=next_q)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the DDPG losses; writes ``td_error`` into ``tensordict``."""
        if self._keys["action"] in self.network_in_keys("value_network"):
            self._require(tensordict, self._keys["action"])
        target = self.target_value(tensordict)
        pred = self._q(tensordict.copy(), opts.separate_params(self, "value_network"))
        if pred.shape != target.shape:
            raise ValueError(
                f"DDPGLoss: {self._keys['state_action_value']!r} has shape {tuple(pred.shape)} "
                f"but the reward has shape {tuple(target.shape)}"
            )
        batch = self._sample_shape(tensordict)
        loss_value = to_batch_shape(distance_loss(pred, target, self.loss_function), batch,
                                    "loss_value", "DDPGLoss")
        pred_b = to_batch_shape(pred.detach(), batch, "state_action_value", "DDPGLoss")
        target_b = to_batch_shape(target, batch, "target", "DDPGLoss")
        td_error = (pred_b - target_b).abs()
        tensordict.set(self._keys["priority"], td_error)
        return opts.loss_output(self, tensordict, {
            "loss_actor": self._actor_per_sample(tensordict),
            "loss_value": loss_value,
        }, dict(
            pred_value=pred_b,
            pred_value_max=pred_b.max(),
            target_value=target_b,
            target_value_max=target_b.max(),
            td_error=td_error,
        ))
