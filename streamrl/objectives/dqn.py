"""DQN loss (Mnih et al. 2015) with the double-DQN target (van Hasselt et al. 2016)."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase
from torch import Tensor, nn

from streamrl.objectives._utils import (
    action_space_of,
    check_action_space,
    check_loss_function,
    check_reduction,
    chosen_values,
    distance_loss,
    greedy_values,
    sample_shape,
    var_nums_of,
    weighted_reduce,
)
from streamrl.objectives.common import BOOTSTRAP_ESTIMATORS, TD_KEYS, LossModule, _output
from streamrl.objectives.value.common import ValueEstimators

__all__ = ["DQNLoss"]

class DQNLoss(LossModule):
    """DQN loss: ``loss = d(Q(s, a), r + gamma * (1 - terminated) * max_a' Q'(s', a'))``.

    ``value_network`` maps the observation to ``action_value`` (one value per action,
    shape ``[*batch, n_actions]``); a plain ``nn.Module`` (not a TensorDict module) is
    wrapped to read ``observation`` and write ``action_value``. With ``delay_value=True`` (default) the bootstrap uses
    target parameters (update them with :class:`SoftUpdate`/:class:`HardUpdate`); with
    ``double_dqn=True`` the live network picks ``a' = argmax Q(s', .)`` and the target network
    values it. ``td_error`` is written into the input.

    ``action_space`` says how the input's action is laid out: ``"one_hot"`` (or
    ``"one-hot"``, or a ``OneHot`` spec) for ``[*batch, n_actions]`` vectors, ``"categorical"``
    (or a ``Categorical`` spec) for indices ``[*batch]`` or ``[*batch, 1]``,
    ``"mult_one_hot"`` (or a ``MultiOneHot`` spec) for one one-hot per component of a
    :class:`~streamrl.modules.QValueActor` with ``var_nums``: ``Q(s, a)`` is then the sum of
    the components' values and the bootstrap the sum of their maxima. When not given it is
    taken from ``value_network`` when that is a :class:`~streamrl.modules.QValueActor`,
    else read from each action's shape and dtype.

    ``reduction`` (``"mean"``, default, ``"sum"`` or ``"none"``: a loss with the batch
    shape) reduces the per-sample loss, weighted by the prioritized-replay importance
    weights ``priority_weight`` when ``use_prioritized_weights`` is True, or ``"auto"``
    (default) and the input has them (the mean is then ``sum(w * l) / sum(w)``).

    **Agent groups** (independent Q-learning, TorchRL's ``iql.py`` layout): with the keys
    set to a group's entries (``action_value=("agents", "action_value")``, ``action``,
    ``value=("agents", "chosen_action_value")``, ``reward``, ``done`` and ``terminated``
    under ``"agents"``), a ``reward`` of shape ``[*batch, n_agents, 1]`` gives one TD term
    per agent (its own reward and bootstrap; :meth:`sample_shape`): the values are then
    ``[*batch, n_agents, n_actions]``, ``pred_value`` / ``target_value`` are per agent,
    ``reduction="none"`` keeps the agent dim, and ``td_error`` (the replay priority) and
    the importance weights are per sample (``td_error`` the mean over its agents).

    Keys (:meth:`set_keys`): ``action``, ``action_value``, ``priority`` (``"td_error"``),
    ``priority_weight``, ``reward``, ``done``, ``terminated``, and for the value estimator
    ``value`` (``"chosen_action_value"``; the bootstrap value is handed to the estimator as
    ``next_value``, not written into the input), ``advantage`` and ``value_target``.

    Output: ``loss`` (the value to backpropagate), and the detached diagnostics
    ``pred_value``, ``target_value`` and ``td_error``. Called with keyword tensors instead
    of a tensordict (``observation=, next_observation=, action=, next_reward=, next_done=,
    next_terminated=``: the input keys, nested parts joined with ``_``), the loss returns
    the ``loss`` tensor only.

    >>> from tensordict import TensorDict
    >>> from streamrl.modules import QValueActor
    >>> loss = DQNLoss(QValueActor(nn.Linear(4, 2), action_space="one_hot"))
    >>> loss.action_space
    'one_hot'
    >>> td = TensorDict({"observation": torch.randn(5, 4),
    ...                  "action": torch.eye(2, dtype=torch.long)[torch.tensor([0, 1, 1, 0, 1])],
    ...                  "next": {"observation": torch.randn(5, 4), "reward": torch.ones(5, 1),
    ...                           "done": torch.zeros(5, 1, dtype=torch.bool)}}, [5])
    >>> loss(td)["loss"].shape
    torch.Size([])
    >>> loss(observation=td["observation"], action=td["action"],
    ...      next_observation=td["next", "observation"], next_reward=td["next", "reward"],
    ...      next_done=td["next", "done"]).shape
    torch.Size([])
    """

    default_keys = {
        "action": "action",
        "action_value": "action_value",
        "value": "chosen_action_value",
        "advantage": "advantage",
        "value_target": "value_target",
        "priority_weight": "priority_weight",
        **TD_KEYS,
    }
    _estimator_key_map = {
        **LossModule._estimator_key_map,
        "value": "value",
        "advantage": "advantage",
        "value_target": "value_target",
    }
    out_keys = ["loss"]
    default_value_estimator = ValueEstimators.TD0
    supported_value_estimators = BOOTSTRAP_ESTIMATORS

    def __init__(
        self,
        value_network: nn.Module,
        *,
        loss_function: str = "l2",
        delay_value: bool = True,
        double_dqn: bool = False,
        action_space: Any = None,
        reduction: str | None = None,
        use_prioritized_weights: str | bool = "auto",
    ) -> None:
        super().__init__()
        if not isinstance(value_network, nn.Module):
            raise TypeError(
                f"{type(self).__name__}: value_network must be an nn.Module, found "
                f"{type(value_network).__name__}"
            )
        if use_prioritized_weights not in ("auto", True, False):
            raise ValueError(
                f"{type(self).__name__}: use_prioritized_weights must be 'auto', True or False, found "
                f"{use_prioritized_weights!r}"
            )
        self.use_prioritized_weights = use_prioritized_weights
        self.reduction = check_reduction(reduction, type(self).__name__)
        self.var_nums = var_nums_of(value_network, action_space)
        action_space = check_action_space(action_space, type(self).__name__, allow_mult=True)
        declared = action_space_of(value_network)
        if action_space is None:
            action_space = declared
        elif declared is not None and declared != action_space:
            raise ValueError(
                f"{type(self).__name__}: action_space={action_space!r} but the value network's QValueActor "
                f"uses {declared!r}"
            )
        if action_space == "mult_one_hot" and self.var_nums is None:
            raise ValueError(
                f"{type(self).__name__}: action_space='mult_one_hot' needs the component sizes: a MultiOneHot "
                "action_space spec or a QValueActor built with var_nums / a MultiOneHot spec"
            )
        if double_dqn and not delay_value:
            raise ValueError("double_dqn=True needs delay_value=True (a separate target network)")
        self.loss_function = check_loss_function(loss_function)
        self.delay_value = delay_value
        self.double_dqn = double_dqn
        self.action_space = action_space
        if not isinstance(value_network, TensorDictModuleBase):
            value_network = TensorDictModule(
                value_network, in_keys=["observation"], out_keys=[self._keys["action_value"]]
            )
        self.register_network("value_network", value_network, create_target=delay_value)

    def sample_shape(self, td: TensorDictBase) -> torch.Size:
        """The shape of the per-sample TD terms for ``td``: its batch shape, followed by the
        agent dims of a multi-agent group when the ``reward`` key has them (``[*batch,
        n_agents, 1]``: independent Q-learning, one TD term per agent)."""
        return sample_shape(td, self._next_key("reward"))

    def _action_values(self, td: TensorDictBase, params: TensorDictBase,
                       shape: torch.Size | None = None) -> Tensor:
        values = self.network_output("value_network", td, "action_value", params)
        shape = td.batch_size if shape is None else shape
        if values.shape[:-1] != shape:
            raise ValueError(
                f"{type(self).__name__}: {self._keys['action_value']!r} must have shape "
                f"{(*shape, 'n_actions')}, found {tuple(values.shape)}"
            )
        return values

    def target_value(self, td: TensorDictBase) -> Tensor:
        """The bootstrapped target for every transition of ``td`` (no gradient)."""
        return self._target_value(td, self.sample_shape(td))

    def _target_value(self, td: TensorDictBase, shape: torch.Size) -> Tensor:
        self._require(td, self._next_key("reward"), self._next_key("done"))
        with torch.no_grad():
            next_td = td.get("next")
            target_params = self.network_params(
                "value_network", target=self.delay_value, detach=True
            )
            next_values = self._action_values(next_td, target_params, shape)
            live = None
            if self.double_dqn:
                live = self._action_values(
                    next_td, self.network_params("value_network", detach=True), shape
                )
            next_value = greedy_values(next_values, self._components(), live)
            reward = td.get(self._next_key("reward"))
            if reward.shape != next_value.shape:
                raise ValueError(
                    f"{type(self).__name__}: reward must have shape {tuple(next_value.shape)} (batch + [1]"
                    f"{', per agent' if len(shape) > td.batch_dims else ''}), "
                    f"found {tuple(reward.shape)}"
                )
            return self.value_estimator.value_estimate(td, next_value=next_value)

    def _components(self) -> list[int] | None:
        return self.var_nums if self.action_space == "mult_one_hot" else None

    def _estimator_value_key(self):
        return self._keys["value"]

    @property
    def in_keys(self) -> list:
        """The keys the loss reads: the network's inputs (now and under ``"next"``), the
        action and the next reward and done flags."""
        obs = self.network_in_keys("value_network")
        nxt = [("next", *k) if isinstance(k, tuple) else ("next", k) for k in obs]
        flags = [self._next_key(k) for k in ("reward", "done", "terminated")]
        return [*obs, self._keys["action"], *nxt, *flags]

    def _kwarg_in_keys(self) -> list:
        return self.in_keys

    def _kwarg_batch_size(self, td: TensorDictBase) -> torch.Size:
        reward = td.get(self._next_key("reward"), None)
        return torch.Size([]) if reward is None else reward.shape[:-1]

    def _priority_weight(self, tensordict: TensorDictBase) -> Tensor | None:
        """The prioritized-replay weights the loss applies (``use_prioritized_weights``)."""
        if self.use_prioritized_weights is True:
            return self._get(tensordict, "priority_weight")
        if self.use_prioritized_weights == "auto":
            return tensordict.get(self._keys["priority_weight"], None)
        return None

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the DQN loss; writes ``td_error`` into ``tensordict``."""
        action = self._get(tensordict, "action")
        shape = self.sample_shape(tensordict)
        values = self._action_values(tensordict, self.network_params("value_network"), shape)
        pred = chosen_values(values, action, shape, self.action_space, self.var_nums, "DQNLoss")
        target = self._target_value(tensordict, shape)
        per_sample = distance_loss(pred, target, self.loss_function).squeeze(-1)
        weight = self._priority_weight(tensordict)
        agent_dims = tuple(range(tensordict.batch_dims, len(shape)))
        if agent_dims and weight is not None:  # a sample's weight covers all its agents
            per_sample = per_sample.mean(agent_dims)
        loss = weighted_reduce(per_sample, weight, self.reduction)
        pred_b, target_b = pred.detach().squeeze(-1), target.squeeze(-1)
        td_error = (pred_b - target_b).abs()
        if agent_dims:  # a sample's priority: the mean over its agents
            td_error = td_error.mean(agent_dims)
        tensordict.set(self._keys["priority"], td_error)
        return _output(loss=loss, pred_value=pred_b, target_value=target_b, td_error=td_error)
