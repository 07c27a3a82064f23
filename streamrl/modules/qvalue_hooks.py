"""Forward hooks that turn a plain network's action values into greedy actions.

``net.register_forward_hook(QValueHook("categorical"))`` makes ``net(obs)`` return
``(action, action_value, chosen_action_value)`` instead of the action values: the hook runs
a :class:`~streamrl.modules.QValueModule` (or a
:class:`~streamrl.modules.DistributionalQValueModule`) on the network's output, so a
non-TensorDict network can serve as a greedy policy, e.g. inside an
:class:`~streamrl.modules.Actor` with ``out_keys=["action", "action_value", ...]``.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict
from torch import nn

from streamrl.modules.qvalue import DistributionalQValueModule, QValueModule

__all__ = ["DistributionalQValueHook", "QValueHook"]


def _run(module: Any, owner: str, output: Any) -> tuple[torch.Tensor, ...]:
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            f"{owner} expects the hooked network to return one tensor of action values, "
            f"found {type(output).__name__}"
        )
    td = module(TensorDict({module.action_value_key: output}, []))
    return tuple(td.get(key) for key in module.out_keys)


class QValueHook:
    """A forward hook making a network return ``(action, action_value, chosen_action_value)``.

    Args:
        action_space: ``"one_hot"`` (or ``"one-hot"``) or ``"categorical"``.
        action_value_key: the name the values are given inside the hook (``None``:
            ``"action_value"``).
        out_keys: the names (and order) of the returned entries (default
            ``["action", "action_value", "chosen_action_value"]``).

    >>> net = nn.Linear(4, 3)
    >>> handle = net.register_forward_hook(QValueHook("categorical"))
    >>> action, values, chosen = net(torch.randn(5, 4))
    >>> action.shape, values.shape, chosen.shape
    (torch.Size([5]), torch.Size([5, 3]), torch.Size([5, 1]))
    >>> bool((values.gather(-1, action.unsqueeze(-1)) == chosen).all())
    True
    """

    def __init__(self, action_space: str, action_value_key: Any = None,
                 out_keys: list | None = None) -> None:
        if action_space is None:
            raise ValueError("QValueHook needs an action_space ('one_hot' or 'categorical')")
        self.qvalue_model = QValueModule(action_space, action_value_key=action_value_key,
                                         out_keys=out_keys)
        self.action_value_key = self.qvalue_model.action_value_key

    def __call__(self, net: nn.Module, observation: Any, values: torch.Tensor
                 ) -> tuple[torch.Tensor, ...]:
        """Replace the network's output ``values`` with the greedy-policy entries."""
        return _run(self.qvalue_model, "QValueHook", values)


class DistributionalQValueHook(QValueHook):
    """A forward hook making a distributional network (log-probabilities
    ``[*B, n_atoms, n_actions]``) return ``(action, action_value)``.

    Args:
        action_space: ``"one_hot"`` (or ``"one-hot"``) or ``"categorical"``.
        support: the return of each atom, 1-D and increasing.
        action_value_key: as for :class:`QValueHook`.
        out_keys: the returned entries (default ``["action", "action_value"]``).

    >>> class Atoms(nn.Module):
    ...     def forward(self, x):
    ...         return torch.zeros(x.shape[0], 3, 2).log_softmax(-2)  # 3 atoms, 2 actions
    >>> net = Atoms()
    >>> handle = net.register_forward_hook(
    ...     DistributionalQValueHook("categorical", support=torch.tensor([-1.0, 0.0, 1.0])))
    >>> action, log_probs = net(torch.randn(4, 5))
    >>> action.shape, log_probs.shape
    (torch.Size([4]), torch.Size([4, 3, 2]))
    """

    def __init__(self, action_space: str, support: torch.Tensor, action_value_key: Any = None,
                 out_keys: list | None = None) -> None:
        if action_space is None:
            raise ValueError(
                "DistributionalQValueHook needs an action_space ('one_hot' or 'categorical')"
            )
        self.qvalue_model = DistributionalQValueModule(
            action_space, support=support, action_value_key=action_value_key, out_keys=out_keys
        )
        self.action_value_key = self.qvalue_model.action_value_key

    def __call__(self, net: nn.Module, observation: Any, values: torch.Tensor
                 ) -> tuple[torch.Tensor, ...]:
        """Replace the network's atom log-probabilities with ``(action, action_value)``."""
        return _run(self.qvalue_model, "DistributionalQValueHook", values)
