"""Actor-critic containers: a shared trunk with a policy head and a value head."""

from __future__ import annotations

from tensordict.nn import (
    ProbabilisticTensorDictSequential,
    TensorDictModuleBase,
    TensorDictSequential,
)

__all__ = ["ActorCriticOperator", "ActorCriticWrapper", "ActorValueOperator"]


def _chain(*modules: TensorDictModuleBase) -> TensorDictSequential:
    """Sequence the modules; probabilistic if the last one is (so ``get_dist`` works)."""
    if isinstance(modules[-1], ProbabilisticTensorDictSequential):
        *head, last = modules
        return ProbabilisticTensorDictSequential(*head, *last.module)
    return TensorDictSequential(*modules)


class ActorValueOperator(TensorDictSequential):
    """``common -> policy`` and ``common -> value`` sharing the trunk ``common``.

    Calling it runs all three (the value head reads the trunk's output, not the action).
    ``get_policy_operator()`` / ``get_value_operator()`` return sequences that share the
    same parameters.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from tensordict.nn import TensorDictModule as M
    >>> op = ActorValueOperator(M(torch.nn.Linear(3, 8), ["observation"], ["hidden"]),
    ...                         M(torch.nn.Linear(8, 2), ["hidden"], ["action"]),
    ...                         M(torch.nn.Linear(8, 1), ["hidden"], ["state_value"]))
    >>> sorted(op.get_value_operator()(TensorDict({"observation": torch.randn(3)})).keys())
    ['hidden', 'observation', 'state_value']
    """

    def __init__(
        self,
        common_operator: TensorDictModuleBase,
        policy_operator: TensorDictModuleBase,
        value_operator: TensorDictModuleBase,
    ) -> None:
        super().__init__(common_operator, policy_operator, value_operator)

    def get_policy_operator(self) -> TensorDictSequential:
        """The trunk followed by the policy head."""
        return _chain(self.module[0], self.module[1])

    def get_value_operator(self) -> TensorDictSequential:
        """The trunk followed by the value head."""
        return TensorDictSequential(self.module[0], self.module[2])


class ActorCriticOperator(ActorValueOperator):
    """Like :class:`ActorValueOperator`, but the critic reads the action (a Q-value head).

    ``get_critic_operator()`` (alias ``get_value_operator()``) runs trunk, policy and critic.
    """

    def get_critic_operator(self) -> TensorDictSequential:
        """Trunk, policy and Q-value head."""
        return TensorDictSequential(self.module[0], self.module[1], self.module[2])

    def get_value_operator(self) -> TensorDictSequential:
        """Same as :meth:`get_critic_operator`."""
        return self.get_critic_operator()


class ActorCriticWrapper(TensorDictSequential):
    """A policy and a value network with no shared trunk, run one after the other.

    ``get_policy_operator()`` and ``get_value_operator()`` return the two modules.
    """

    def __init__(self, policy_operator: TensorDictModuleBase, value_operator: TensorDictModuleBase):
        super().__init__(policy_operator, value_operator)

    def get_policy_operator(self) -> TensorDictModuleBase:
        """The policy module."""
        return self.module[0]

    def get_value_operator(self) -> TensorDictModuleBase:
        """The value module."""
        return self.module[1]
