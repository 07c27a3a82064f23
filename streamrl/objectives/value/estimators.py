"""Value estimator modules: TD(0), TD(1), TD(lambda), GAE and multi-agent GAE over tensordicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tensordict import TensorDictBase
from torch import Tensor

from streamrl.objectives.value import functional as F
from streamrl.objectives.value.common import ValueEstimatorBase, ValueEstimators
from streamrl.objectives.value.vtrace import VTrace

__all__ = ["GAE", "MultiAgentGAE", "TD0Estimator", "TD1Estimator", "TDLambdaEstimator", "make_estimator"]


def _check_vectorized(vectorized: bool | None) -> bool:
    """TorchRL's ``vectorized``: one implementation (a vectorized reverse scan) serves both
    values, with the same results; anything but a bool or None is refused."""
    if vectorized not in (None, True, False):
        raise TypeError(f"vectorized must be a bool or None, found {vectorized!r}")
    return True


def _check_average_rewards(average_rewards: bool) -> bool:
    if not isinstance(average_rewards, bool):
        raise TypeError(f"average_rewards must be a bool, found {average_rewards!r}")
    return average_rewards


def _check_lmbda(lmbda: float | Tensor) -> float | Tensor:
    if isinstance(lmbda, Tensor):
        return lmbda
    if not isinstance(lmbda, (int, float)):
        raise TypeError(f"lmbda must be a float or a tensor, found {type(lmbda).__name__}")
    if not 0.0 <= float(lmbda) <= 1.0:
        raise ValueError(f"lmbda must be in [0, 1], found {lmbda}")
    return float(lmbda)


class TD0Estimator(ValueEstimatorBase):
    """One-step TD target ``r + gamma * (1 - terminated) * V(s')``.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"state_value": torch.zeros(2, 1), "next": {
    ...     "reward": torch.ones(2, 1), "done": torch.tensor([[False], [True]]),
    ...     "state_value": torch.ones(2, 1)}}, [2])
    >>> TD0Estimator(gamma=0.9)(td)["value_target"].squeeze(-1)
    tensor([1.9000, 1.0000])

    ``average_rewards=True`` standardises the rewards (zero mean, unit std) first; the other
    keyword arguments are :class:`ValueEstimatorBase`'s.
    """

    def __init__(
        self,
        *,
        gamma: float | Tensor,
        value_network: Callable[[TensorDictBase], Any] | None = None,
        differentiable: bool = False,
        average_rewards: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(gamma=gamma, value_network=value_network, differentiable=differentiable,
                         **options)
        self.average_rewards = _check_average_rewards(average_rewards)

    def value_estimate(self, td: TensorDictBase, *, next_value: Tensor | None = None) -> Tensor:
        """Return the TD(0) target for every entry of ``td`` (``next_value``: see
        :meth:`ValueEstimatorBase.value_estimate`)."""
        reward, _, terminated = self._flags(td)
        _, nxt = self.state_values(td, need_current=False, next_value=next_value)
        return F.td0_return_estimate(self.gamma, nxt, reward, terminated)


class TDLambdaEstimator(ValueEstimatorBase):
    """TD(lambda) return over the time dimension (the tensordict's last batch dim).

    Trajectory ends (``done``) cut the recursion; terminations stop bootstrapping,
    truncations and the end of the time axis bootstrap from ``V(s')``. ``average_rewards``
    standardises the rewards first; ``vectorized`` (a bool or None) is TorchRL's choice of
    implementation: streamrl's vectorized scan serves both. Other keyword arguments are
    :class:`ValueEstimatorBase`'s.
    """

    def __init__(
        self,
        *,
        gamma: float | Tensor,
        lmbda: float | Tensor,
        value_network: Callable[[TensorDictBase], Any] | None = None,
        differentiable: bool = False,
        average_rewards: bool = False,
        vectorized: bool | None = None,
        **options: Any,
    ) -> None:
        super().__init__(gamma=gamma, value_network=value_network, differentiable=differentiable,
                         **options)
        self.lmbda = _check_lmbda(lmbda)
        self.average_rewards = _check_average_rewards(average_rewards)
        self.vectorized = _check_vectorized(vectorized)

    def value_estimate(self, td: TensorDictBase, *, next_value: Tensor | None = None) -> Tensor:
        """Return the TD(lambda) return for every step of ``td`` (``next_value``: see
        :meth:`ValueEstimatorBase.value_estimate`)."""
        time_dim = self._time_dim(td)
        reward, done, terminated = self._flags(td)
        _, nxt = self.state_values(td, need_current=False, next_value=next_value)
        return F.td_lambda_return_estimate(
            self.gamma, self.lmbda, nxt, reward, done, terminated, time_dim=time_dim
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, lmbda={self.lmbda}"


class TD1Estimator(TDLambdaEstimator):
    """Discounted return to each trajectory's end (TD(lambda) with ``lmbda=1``)."""

    def __init__(
        self,
        *,
        gamma: float | Tensor,
        value_network: Callable[[TensorDictBase], Any] | None = None,
        differentiable: bool = False,
        average_rewards: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(
            gamma=gamma, lmbda=1.0, value_network=value_network, differentiable=differentiable,
            average_rewards=average_rewards, **options
        )


class GAE(ValueEstimatorBase):
    """Generalized advantage estimation over the time dimension.

    ``forward`` writes ``advantage`` and ``value_target`` (``advantage + V(s)``); with
    ``average_gae=True`` the advantage is standardised (zero mean, unit std) over the batch.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"state_value": torch.zeros(3, 1), "next": {
    ...     "reward": torch.ones(3, 1), "done": torch.zeros(3, 1, dtype=torch.bool),
    ...     "state_value": torch.zeros(3, 1)}}, [3])
    >>> GAE(gamma=0.5, lmbda=1.0)(td)["advantage"].squeeze(-1)
    tensor([1.7500, 1.5000, 1.0000])
    """

    def __init__(
        self,
        *,
        gamma: float | Tensor,
        lmbda: float | Tensor,
        value_network: Callable[[TensorDictBase], Any] | None = None,
        differentiable: bool = False,
        average_gae: bool = False,
        vectorized: bool | None = None,
        **options: Any,
    ) -> None:
        super().__init__(gamma=gamma, value_network=value_network, differentiable=differentiable,
                         **options)
        self.lmbda = _check_lmbda(lmbda)
        self.average_gae = average_gae
        self.vectorized = _check_vectorized(vectorized)

    def _compute(self, td: TensorDictBase, next_value: Tensor | None = None
                 ) -> tuple[Tensor, Tensor]:
        time_dim = self._time_dim(td)
        reward, done, terminated = self._flags(td)
        current, nxt = self.state_values(td, next_value=next_value)
        return F.generalized_advantage_estimate(
            self.gamma, self.lmbda, current, nxt, reward, done, terminated, time_dim=time_dim
        )

    def value_estimate(self, td: TensorDictBase, *, next_value: Tensor | None = None) -> Tensor:
        """Return ``advantage + V(s)`` for every step of ``td`` (``next_value``: see
        :meth:`ValueEstimatorBase.value_estimate`)."""
        return self._compute(td, next_value)[1]

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        """Write ``advantage`` and ``value_target`` into ``td`` and return it."""
        advantage, target = self._compute(td)
        if self.average_gae:
            advantage = (advantage - advantage.mean()) / advantage.std().clamp_min(1e-8)
        td.set(self._keys["advantage"], advantage)
        td.set(self._keys["value_target"], target)
        return td

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, lmbda={self.lmbda}, average_gae={self.average_gae}"


class MultiAgentGAE(GAE):
    """:class:`GAE` for values with an agent dimension and team-level signals.

    The value network writes one value per agent (``[*B, T, n_agents, 1]``) while the
    reward, ``done`` and ``terminated`` are shared by the team (``[*B, T, 1]``), the
    cooperative multi-agent layout. The team signals are broadcast over the agents (a new
    dim at ``agent_dim`` of the value) before the usual GAE recursion; signals that already
    have the agent dim (e.g. per-agent rewards) are used as they are. ``advantage`` and
    ``value_target`` have the shape of the value.

    Args:
        agent_dim: the agent dimension of the value tensor (default ``-2``, the layout of
            :class:`~streamrl.modules.MultiAgentMLP`); negative dims count from the value's
            last dim.
        gamma, lmbda, value_network, differentiable, average_gae: as :class:`GAE`.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"state_value": torch.zeros(3, 2, 1), "next": {
    ...     "reward": torch.ones(3, 1), "done": torch.zeros(3, 1, dtype=torch.bool),
    ...     "state_value": torch.zeros(3, 2, 1)}}, [3])
    >>> MultiAgentGAE(gamma=0.5, lmbda=1.0)(td)["advantage"].squeeze(-1)
    tensor([[1.7500, 1.7500],
            [1.5000, 1.5000],
            [1.0000, 1.0000]])
    """

    def __init__(self, *, agent_dim: int = -2, **kwargs: Any) -> None:
        if not isinstance(agent_dim, int):
            raise TypeError(f"agent_dim must be an int, found {type(agent_dim).__name__}")
        super().__init__(**kwargs)
        self.agent_dim = agent_dim

    def _to_agents(self, signal: Tensor, value: Tensor, name: str) -> Tensor:
        if signal.shape == value.shape:
            return signal
        dim = self.agent_dim % value.ndim
        if signal.ndim + 1 != value.ndim:
            raise ValueError(
                f"MultiAgentGAE: {name} has shape {tuple(signal.shape)}; expected the value's "
                f"shape {tuple(value.shape)} or that shape without the agent dim {dim}"
            )
        return signal.unsqueeze(dim).expand(value.shape)

    def _compute(self, td: TensorDictBase, next_value: Tensor | None = None
                 ) -> tuple[Tensor, Tensor]:
        time_dim = self._time_dim(td)
        reward = self._get(td, self._next_key("reward"))
        done = self._get(td, self._next_key("done"))
        terminated = td.get(self._next_key("terminated"), None)
        if terminated is None:
            terminated = done  # no terminated flag: every end is terminal
        current, nxt = self.state_values(td, next_value=next_value)
        reward, done, terminated = (
            self._to_agents(x, current, name)
            for x, name in ((reward, "reward"), (done, "done"), (terminated, "terminated"))
        )
        return F.generalized_advantage_estimate(
            self.gamma, self.lmbda, current, nxt, reward, done, terminated, time_dim=time_dim
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, agent_dim={self.agent_dim}"


def make_estimator(
    value_type: ValueEstimators | str,
    *,
    gamma: float | Tensor,
    lmbda: float | Tensor | None = None,
    value_network: Callable[[TensorDictBase], Any] | None = None,
    **kwargs: Any,
) -> ValueEstimatorBase:
    """Build the estimator named by ``value_type`` (a :class:`ValueEstimators` or its value).

    ``lmbda`` is required for ``TDLambda``, ``GAE`` and ``MAGAE`` and rejected for
    ``TD0``/``TD1``.
    """
    if isinstance(value_type, str):
        try:
            value_type = ValueEstimators(value_type)
        except ValueError:
            try:
                value_type = ValueEstimators[value_type]
            except KeyError:
                raise ValueError(
                    f"unknown value estimator {value_type!r}; expected one of "
                    f"{[v.name for v in ValueEstimators]}"
                ) from None
    if not isinstance(value_type, ValueEstimators):
        raise TypeError(
            f"value_type must be a ValueEstimators member, found {type(value_type).__name__}"
        )
    if value_type is ValueEstimators.VTrace:
        if lmbda is not None:
            raise ValueError(f"VTrace takes no lmbda (found lmbda={lmbda})")
        if kwargs.get("actor_network") is None:
            raise ValueError(
                "VTrace needs actor_network (the policy being trained); only losses with a "
                "probabilistic actor (A2C, PPO, REINFORCE) can build it"
            )
        return VTrace(gamma=gamma, value_network=value_network, **kwargs)
    kwargs.pop("actor_network", None)
    if value_type in (ValueEstimators.TD0, ValueEstimators.TD1):
        if lmbda is not None:
            raise ValueError(f"{value_type.name} takes no lmbda (found lmbda={lmbda})")
        cls = TD0Estimator if value_type is ValueEstimators.TD0 else TD1Estimator
        return cls(gamma=gamma, value_network=value_network, **kwargs)
    if lmbda is None:
        raise ValueError(f"{value_type.name} needs lmbda, e.g. lmbda=0.95")
    cls = {ValueEstimators.TDLambda: TDLambdaEstimator, ValueEstimators.GAE: GAE,
           ValueEstimators.MAGAE: MultiAgentGAE}[value_type]
    return cls(gamma=gamma, lmbda=lmbda, value_network=value_network, **kwargs)
