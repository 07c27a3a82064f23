"""CQL loss for discrete actions (Kumar et al. 2020): DQN plus the conservative penalty."""

from __future__ import annotations

from typing import Any

from tensordict import TensorDictBase
from torch import nn

from streamrl.objectives import _loss_options as opts
from streamrl.objectives._conservative import conservative_penalty
from streamrl.objectives._utils import chosen_values, distance_loss, weighted_reduce
from streamrl.objectives.common import _output
from streamrl.objectives.dqn import DQNLoss

__all__ = ["DiscreteCQLLoss"]


class DiscreteCQLLoss(DQNLoss):
    """Conservative Q-learning on top of DQN, discrete actions.

    ``value_network`` writes ``action_value`` (``[*batch, n_actions]``), as for
    :class:`DQNLoss`. With ``a`` the dataset's action and ``y = r + gamma * (1 - terminated)
    * max_a' Q'(s', a')`` (target parameters when ``delay_value``):

    - ``loss_qvalue = mean 0.5 * d(Q(s, a), y)``;
    - ``loss_cql = mean(logsumexp_a' Q(s, a') - Q(s, a))``: pushes down the values of every
      action and up that of the dataset's one.

    Output: ``loss_qvalue``, ``loss_cql`` and DQN's detached diagnostics ``pred_value``,
    ``target_value``, ``td_error`` (per transition). ``td_error`` (``|Q(s, a) - y|``) is
    written into the input.

    ``action_space``, ``loss_function`` (default ``"l2"``), ``delay_value``, ``reduction``
    and ``use_prioritized_weights`` are :class:`DQNLoss`'s; ``gamma`` is refused as in
    TorchRL 0.14 (``make_value_estimator(gamma=...)``).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from streamrl.modules import QValueActor
    >>> loss = DiscreteCQLLoss(QValueActor(nn.Linear(4, 3), action_space="categorical"))
    >>> td = TensorDict({"observation": torch.randn(5, 4), "action": torch.tensor([0, 1, 2, 0, 1]),
    ...                  "next": {"observation": torch.randn(5, 4), "reward": torch.ones(5, 1),
    ...                           "done": torch.zeros(5, 1, dtype=torch.bool)}}, [5])
    >>> sorted(loss(td).keys())
    ['loss_cql', 'loss_qvalue', 'pred_value', 'target_value', 'td_error']
    """

    out_keys = ["loss_qvalue", "loss_cql"]

    def __init__(
        self,
        value_network: nn.Module,
        *,
        loss_function: str = "l2",
        delay_value: bool = True,
        gamma: float | None = None,
        action_space: Any = None,
        reduction: str | None = None,
        use_prioritized_weights: str | bool = "auto",
    ) -> None:
        opts.refuse_ctor_gamma(gamma, "DiscreteCQLLoss")
        super().__init__(value_network, loss_function=loss_function, delay_value=delay_value,
                         action_space=action_space, reduction=reduction,
                         use_prioritized_weights=use_prioritized_weights)
        if self.action_space == "mult_one_hot":
            raise ValueError(
                "DiscreteCQLLoss: action_space must be 'one_hot' or 'categorical' (one discrete "
                "action per step), found 'mult_one_hot'"
            )

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the TD and conservative losses; writes ``td_error`` into ``tensordict``."""
        action = self._get(tensordict, "action")
        batch = tensordict.batch_size
        values = self._action_values(tensordict, self.network_params("value_network"))
        pred = chosen_values(values, action, batch, self.action_space, None, "DiscreteCQLLoss")
        target = self.target_value(tensordict)
        weight = self._priority_weight(tensordict)
        loss_qvalue = 0.5 * distance_loss(pred, target, self.loss_function).squeeze(-1)
        loss_cql = conservative_penalty(values, pred.squeeze(-1), dim=-1)
        pred_b, target_b = pred.detach().squeeze(-1), target.squeeze(-1)
        td_error = (pred_b - target_b).abs()
        tensordict.set(self._keys["priority"], td_error)
        return _output(loss_qvalue=weighted_reduce(loss_qvalue, weight, self.reduction),
                       loss_cql=weighted_reduce(loss_cql, weight, self.reduction),
                       pred_value=pred_b, target_value=target_b, td_error=td_error)
