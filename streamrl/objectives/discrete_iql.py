"""IQL loss for discrete actions: :class:`~streamrl.objectives.IQLLoss` with per-action
Q-values and a categorical policy."""

from __future__ import annotations

from typing import Any

from tensordict import TensorDictBase
from torch import Tensor, nn

from streamrl.objectives import _sac_common as shared
from streamrl.objectives._utils import action_to_index, check_action_space
from streamrl.objectives.iql import IQLLoss

__all__ = ["DiscreteIQLLoss"]


class DiscreteIQLLoss(IQLLoss):
    """Implicit Q-learning with discrete actions.

    The same three losses as :class:`IQLLoss` (see there), with ``qvalue_network`` writing
    one value per action at ``state_action_value`` (``[*batch, num_actions]``): ``Q(s, a)``
    is the entry of the dataset's action ``a``. ``actor_network`` is probabilistic with a
    ``Categorical`` / ``OneHotCategorical`` distribution; ``log pi(a|s)`` is read from its
    logits.

    ``action_space`` is the layout of the input's action: ``"one_hot"`` / ``"one-hot"``,
    ``"categorical"`` (indices, ``[*batch]`` or ``[*batch, 1]``), or a ``OneHot`` /
    ``Categorical`` spec; by default (``None``) each action's shape and dtype tell.

    Output: ``loss_actor``, ``loss_qvalue``, ``loss_value``, ``entropy``.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from tensordict.nn import TensorDictModule
    >>> from streamrl.modules import OneHotCategorical, ProbabilisticActor, ValueOperator
    >>> actor = ProbabilisticActor(TensorDictModule(nn.Linear(3, 4), ["observation"], ["logits"]),
    ...                            in_keys=["logits"], distribution_class=OneHotCategorical)
    >>> qvalue = TensorDictModule(nn.Linear(3, 4), ["observation"], ["state_action_value"])
    >>> value = ValueOperator(nn.Linear(3, 1), in_keys=["observation"])
    >>> loss = DiscreteIQLLoss(actor, qvalue, value, action_space="categorical")
    >>> td = TensorDict({"observation": torch.randn(2, 3), "action": torch.tensor([0, 3]),
    ...     "next": {"observation": torch.randn(2, 3), "reward": torch.randn(2, 1),
    ...              "done": torch.zeros(2, 1, dtype=torch.bool)}}, [2])
    >>> sorted(loss(td).keys())
    ['entropy', 'loss_actor', 'loss_qvalue', 'loss_value']
    """

    def __init__(
        self,
        actor_network: nn.Module,
        qvalue_network: nn.Module,
        value_network: nn.Module | None,
        *,
        action_space: Any = None,
        num_qvalue_nets: int = 2,
        loss_function: str = "smooth_l1",
        temperature: float = 1.0,
        expectile: float = 0.5,
        gamma: float | None = None,
        priority_key: str | None = None,
        separate_losses: bool = False,
        reduction: str | None = None,
        deactivate_vmap: bool = False,
        scalar_output_mode: str | None = None,
    ) -> None:
        layout = check_action_space(action_space, "DiscreteIQLLoss")
        super().__init__(
            actor_network, qvalue_network, value_network, num_qvalue_nets=num_qvalue_nets,
            loss_function=loss_function, temperature=temperature, expectile=expectile,
            gamma=gamma, priority_key=priority_key, separate_losses=separate_losses,
            reduction=reduction, deactivate_vmap=deactivate_vmap,
            scalar_output_mode=scalar_output_mode,
        )
        self.action_space = layout

    def _action_index(self, td: TensorDictBase, action: Tensor, num_actions: int) -> Tensor:
        return action_to_index(action, td.batch_size, num_actions, self.action_space,
                               type(self).__name__)

    def _data_qvalues(self, td: TensorDictBase, action: Tensor,
                      params: TensorDictBase) -> Tensor:
        values = self.ensemble_output("qvalue_network", td, self._keys["state_action_value"],
                                      params)
        copies = values.shape[0]
        if values.shape[1:-1] != td.batch_size:
            raise ValueError(
                f"{type(self).__name__}: {self._keys['state_action_value']!r} must have shape "
                f"{(*td.batch_size, 'num_actions')} per critic, found {tuple(values.shape[1:])}"
            )
        index = self._action_index(td, action, values.shape[-1])
        gather = index.unsqueeze(-1).expand(copies, *td.batch_size, 1)
        return values.gather(-1, gather).squeeze(-1)

    def _data_log_prob(self, td: TensorDictBase, action: Tensor) -> Tensor:
        log_p = shared.categorical_log_probs(self, td, self.network_params("actor_network"))
        index = self._action_index(td, action, log_p.shape[-1])
        return log_p.gather(-1, index.unsqueeze(-1)).squeeze(-1)
