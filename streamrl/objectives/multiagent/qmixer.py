"""QMixer loss: DQN on a global value mixed from the agents' local values (VDN / QMIX)."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase
from torch import Tensor, nn

from streamrl.modules.models.mixers import QMixer
from streamrl.objectives._utils import (
    action_space_of,
    action_to_index,
    check_action_space,
    check_loss_function,
    distance_loss,
    greedy_values,
)
from streamrl.objectives.common import BOOTSTRAP_ESTIMATORS, TD_KEYS, LossModule, _output
from streamrl.objectives.value.common import ValueEstimators

__all__ = ["QMixerLoss"]


class QMixerLoss(LossModule):
    """Cooperative multi-agent DQN through a mixer:
    ``loss = d(mix(Q_i(o_i, a_i)), r + gamma * (1 - terminated) * mix'(max_a Q'_i(o'_i, a)))``.

    ``local_value_network`` writes each agent's action values at ``("agents",
    "action_value")`` (shape ``[*B, n_agents, n_actions]``; a plain ``nn.Module`` is wrapped
    to read ``("agents", "observation")``). The value of each agent's stored action
    (``("agents", "action")``, one-hot or index, see ``action_space``) is written at
    ``local_value`` (``("agents", "chosen_action_value")``, ``[*B, n_agents, 1]``), then
    ``mixer_network`` maps it (and, for a QMIX mixer, the global ``"state"``) to
    ``global_value`` (``"chosen_action_value"``, ``[*B, 1]``). A plain
    :class:`~streamrl.modules.QMixer` is wrapped to read ``local_value`` and ``"state"``, any
    other plain module (e.g. :class:`~streamrl.modules.VDNMixer`) ``local_value`` only. The
    target takes each agent's greedy next value and mixes it with the target parameters of
    both networks (``delay_value=True``); with ``double_dqn=True`` (pymarl's ``double_q``, not
    in TorchRL's loss) each agent's next action is the live network's greedy one, valued by
    the target network. Reward, done and terminated are global (``[*B,
    1]``). The bootstrap goes through the value estimator (TD(0), TD(1) or TD(lambda), the
    last two over the input's last batch dim as time), which reads the next global value at
    ``("next", global_value)`` and shares the loss's ``advantage`` / ``value_target`` keys.
    Output: ``loss``; ``td_error`` is written into the input.

    >>> from tensordict import TensorDict
    >>> from streamrl.modules import VDNMixer
    >>> local = TensorDictModule(nn.Linear(4, 3), [("agents", "observation")],
    ...                          [("agents", "action_value")])
    >>> loss = QMixerLoss(local, VDNMixer(n_agents=2), action_space="categorical")
    >>> td = TensorDict({
    ...     "agents": TensorDict({"observation": torch.randn(5, 2, 4),
    ...                           "action": torch.randint(3, (5, 2))}, [5, 2]),
    ...     "next": {"agents": TensorDict({"observation": torch.randn(5, 2, 4)}, [5, 2]),
    ...              "reward": torch.randn(5, 1), "done": torch.zeros(5, 1, dtype=torch.bool)},
    ... }, [5])
    >>> loss(td)["loss"].shape
    torch.Size([])
    """

    default_keys = {
        "local_value": ("agents", "chosen_action_value"),
        "global_value": "chosen_action_value",
        "action": ("agents", "action"),
        "action_value": ("agents", "action_value"),
        "advantage": "advantage",
        "value_target": "value_target",
        **TD_KEYS,
    }
    _estimator_key_map = {
        **LossModule._estimator_key_map,
        "global_value": "value",
        "advantage": "advantage",
        "value_target": "value_target",
    }
    default_value_estimator = ValueEstimators.TD0
    supported_value_estimators = BOOTSTRAP_ESTIMATORS

    def __init__(
        self,
        local_value_network: nn.Module,
        mixer_network: nn.Module,
        *,
        loss_function: str = "l2",
        delay_value: bool = True,
        double_dqn: bool = False,
        action_space: Any = None,
    ) -> None:
        super().__init__()
        if double_dqn and not delay_value:
            raise ValueError("QMixerLoss: double_dqn=True needs delay_value=True (a separate "
                             "target network)")
        self.double_dqn = bool(double_dqn)
        for name, net in (("local_value_network", local_value_network),
                          ("mixer_network", mixer_network)):
            if not isinstance(net, nn.Module):
                raise TypeError(f"QMixerLoss: {name} must be an nn.Module, found "
                                f"{type(net).__name__}")
        space = check_action_space(action_space, "QMixerLoss")
        declared = action_space_of(local_value_network)
        if space is not None and declared is not None and space != declared:
            raise ValueError(f"QMixerLoss: action_space={space!r} but the local value network "
                             f"uses {declared!r}")
        self.action_space = space if space is not None else declared
        self.loss_function = check_loss_function(loss_function)
        self.delay_value = bool(delay_value)
        if not isinstance(local_value_network, TensorDictModuleBase):
            local_value_network = TensorDictModule(
                local_value_network, in_keys=[("agents", "observation")],
                out_keys=[self._keys["action_value"]])
        if not isinstance(mixer_network, TensorDictModuleBase):
            in_keys = [self._keys["local_value"]]
            if isinstance(mixer_network, QMixer):
                in_keys.append("state")
            mixer_network = TensorDictModule(mixer_network, in_keys=in_keys,
                                             out_keys=[self._keys["global_value"]])
        self.register_network("local_value_network", local_value_network,
                              create_target=self.delay_value)
        self.register_network("mixer_network", mixer_network, create_target=self.delay_value)

    def _local_values(self, td: TensorDictBase, params: TensorDictBase) -> Tensor:
        values = self.network_output("local_value_network", td, "action_value", params)
        if values.ndim != td.batch_dims + 2 or values.shape[: td.batch_dims] != td.batch_size:
            raise ValueError(
                f"QMixerLoss: {self._keys['action_value']!r} must have shape "
                f"{(*td.batch_size, 'n_agents', 'n_actions')}, found {tuple(values.shape)}"
            )
        return values

    def _mix(self, td: TensorDictBase, local: Tensor, params: TensorDictBase) -> Tensor:
        work = td.copy()
        work.set(self._keys["local_value"], local)
        out = self.call_network("mixer_network", work, params)
        value = self._get(out, "global_value")
        if value.shape != (*td.batch_size, 1):
            raise ValueError(
                f"QMixerLoss: the mixer's {self._keys['global_value']!r} must have shape "
                f"{(*td.batch_size, 1)}, found {tuple(value.shape)}"
            )
        return value

    def _estimator_value_key(self):
        return self._keys["global_value"]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the loss; writes ``td_error`` (``[*B]``) into ``tensordict``."""
        action = self._get(tensordict, "action")
        self._require(tensordict, self._next_key("reward"), self._next_key("done"))
        values = self._local_values(tensordict, self.network_params("local_value_network"))
        index = action_to_index(action, values.shape[:-1], values.shape[-1], self.action_space,
                                "QMixerLoss")
        local = values.gather(-1, index.unsqueeze(-1))
        pred = self._mix(tensordict, local, self.network_params("mixer_network"))
        with torch.no_grad():
            next_td = tensordict.get("next")
            next_values = self._local_values(next_td, self.network_params(
                "local_value_network", target=self.delay_value, detach=True))
            live = None
            if self.double_dqn:
                live = self._local_values(next_td, self.network_params(
                    "local_value_network", detach=True))
            next_local = greedy_values(next_values, None, live)
            next_global = self._mix(next_td, next_local, self.network_params(
                "mixer_network", target=self.delay_value, detach=True))
            reward = tensordict.get(self._next_key("reward"))
            if reward.shape != next_global.shape:
                raise ValueError(
                    f"QMixerLoss: the (global) reward must have shape "
                    f"{tuple(next_global.shape)}, found {tuple(reward.shape)}"
                )
            target = self.value_estimator.value_estimate(tensordict, next_value=next_global)
        loss = distance_loss(pred, target, self.loss_function).mean()
        td_error = (pred.detach() - target).abs().squeeze(-1)
        tensordict.set(self._keys["priority"], td_error)
        return _output(loss=loss)
