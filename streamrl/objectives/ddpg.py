"""DDPG loss (Lillicrap et al. 2016): deterministic actor, Q-value critic."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import nn

from streamrl.objectives._utils import check_loss_function, distance_loss, to_batch_shape
from streamrl.objectives.common import BOOTSTRAP_ESTIMATORS, TD_KEYS, LossModule, _output
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

    Output: ``loss_actor``, ``loss_value``, ``pred_value``, ``target_value``,
    ``pred_value_max``, ``target_value_max``, ``td_error``.
    """

    default_keys = {
        "action": "action",
        "state_action_value": "state_action_value",
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
    ) -> None:
        super().__init__()
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
        work = td.copy()
        work = self.call_network("actor_network", work)
        q = self._q(work, self.network_params("value_network", detach=True))
        return -q.mean()

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
            work = td.copy()
            work.set(self._next_key("state_action_value"), next_q)
            return self.value_estimator.value_estimate(work)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the DDPG losses; writes ``td_error`` into ``tensordict``."""
        self._require(tensordict, self._keys["action"])
        target = self.target_value(tensordict)
        pred = self._q(tensordict.copy(), self.network_params("value_network"))
        if pred.shape != target.shape:
            raise ValueError(
                f"DDPGLoss: {self._keys['state_action_value']!r} has shape {tuple(pred.shape)} "
                f"but the reward has shape {tuple(target.shape)}"
            )
        loss_value = distance_loss(pred, target, self.loss_function).mean()
        batch = tensordict.batch_size
        pred_b = to_batch_shape(pred.detach(), batch, "state_action_value", "DDPGLoss")
        target_b = to_batch_shape(target, batch, "target", "DDPGLoss")
        td_error = (pred_b - target_b).abs()
        tensordict.set(self._keys["priority"], td_error)
        return _output(
            loss_actor=self.loss_actor(tensordict),
            loss_value=loss_value,
            pred_value=pred_b,
            pred_value_max=pred_b.max(),
            target_value=target_b,
            target_value_max=target_b.max(),
            td_error=td_error,
        )
