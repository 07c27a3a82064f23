"""The V-trace value estimator (IMPALA) over tensordicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import Tensor

from streamrl.objectives.value import _composite as composite
from streamrl.objectives.value.common import ValueEstimatorBase
from streamrl.objectives.value.functional import vtrace_advantage_estimate

__all__ = ["VTrace"]


class VTrace(ValueEstimatorBase):
    """Off-policy corrected targets and advantages (V-trace, Espeholt et al. 2018).

    ``actor_network`` is the policy being trained: anything with ``get_dist(td)`` (a
    probabilistic TensorDict module); the log-probability of the stored ``action`` under it is
    compared with the collecting policy's, read at ``sample_log_prob``
    (``"action_log_prob"``). Log-probabilities with action dims are summed. See
    :func:`~streamrl.objectives.value.functional.vtrace_advantage_estimate` for the
    formulas; ``forward`` writes ``advantage`` (standardised over the batch with
    ``average_adv=True``) and ``value_target``. The time dimension is the tensordict's last
    batch dimension.

    >>> from tensordict import TensorDict
    >>> from tensordict.nn import ProbabilisticTensorDictModule, TensorDictModule
    >>> from tensordict.nn import ProbabilisticTensorDictSequential
    >>> actor = ProbabilisticTensorDictSequential(
    ...     TensorDictModule(lambda obs: torch.zeros(*obs.shape[:-1], 2), ["observation"], ["logits"]),
    ...     ProbabilisticTensorDictModule(in_keys=["logits"], out_keys=["action"],
    ...                                   distribution_class=torch.distributions.Categorical))
    >>> td = TensorDict({"observation": torch.zeros(3, 1), "action": torch.zeros(3, dtype=torch.long),
    ...     "action_log_prob": torch.full((3,), 0.5).log(), "state_value": torch.zeros(3, 1),
    ...     "next": {"reward": torch.ones(3, 1), "done": torch.zeros(3, 1, dtype=torch.bool),
    ...              "state_value": torch.zeros(3, 1)}}, [3])
    >>> VTrace(gamma=0.5, actor_network=actor)(td)["value_target"].squeeze(-1)
    tensor([1.7500, 1.5000, 1.0000])
    """

    default_keys = {
        **ValueEstimatorBase.default_keys,
        "sample_log_prob": "action_log_prob",
        "action": "action",
    }

    def __init__(
        self,
        *,
        gamma: float | Tensor,
        actor_network: Any,
        value_network: Callable[[TensorDictBase], Any] | None = None,
        rho_thresh: float | Tensor = 1.0,
        c_thresh: float | Tensor = 1.0,
        average_adv: bool = False,
        differentiable: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(gamma=gamma, value_network=value_network, differentiable=differentiable,
                         **options)
        if actor_network is None or not callable(getattr(actor_network, "get_dist", None)):
            raise TypeError(
                "VTrace: actor_network must have get_dist(td) (a probabilistic module), found "
                f"{type(actor_network).__name__}"
            )
        for name, value in (("rho_thresh", rho_thresh), ("c_thresh", c_thresh)):
            if not isinstance(value, Tensor) and not (isinstance(value, (int, float))
                                                      and value > 0):
                raise ValueError(f"VTrace: {name} must be a float > 0, found {value!r}")
        self.actor_network = actor_network
        self.rho_thresh = rho_thresh
        self.c_thresh = c_thresh
        self.average_adv = bool(average_adv)

    def _log_probs(self, td: TensorDictBase, like: Tensor) -> tuple[Tensor, Tensor]:
        with torch.set_grad_enabled(self.differentiable and torch.is_grad_enabled()):
            dist = self.actor_network.get_dist(td.copy())
            if composite.is_composite(dist):
                # one action (and one stored log-prob) per head: the joint is their sum
                log_pi = composite.log_prob_of(dist, self._entries(td, "action"), td.batch_dims)
            else:
                log_pi = dist.log_prob(self._get(td, self._keys["action"]))
        log_mu = self._get(td, self._keys["sample_log_prob"]) if not isinstance(
            self._keys["sample_log_prob"], list) else composite.joint(
            self._entries(td, "sample_log_prob"), td.batch_dims)
        out = []
        for name, lp in (("log_pi", log_pi), ("log_mu", log_mu)):
            if lp.shape[: td.batch_dims] != td.batch_size:
                raise ValueError(
                    f"VTrace: {name} must start with the batch shape {tuple(td.batch_size)}, "
                    f"found {tuple(lp.shape)}"
                )
            if lp.ndim > td.batch_dims:
                lp = lp.sum(dim=tuple(range(td.batch_dims, lp.ndim)))
            out.append(lp.unsqueeze(-1).expand_as(like))
        return out[0], out[1].detach()

    def _entries(self, td: TensorDictBase, name: str) -> TensorDictBase:
        """The entries at key ``name`` (one key or a list of them), as a TensorDict."""
        keys = self._keys[name]
        keys = list(keys) if isinstance(keys, list) else [keys]
        for key in keys:
            self._get(td, key)
        return td.select(*keys)

    def _compute(self, td: TensorDictBase, next_value: Tensor | None = None
                 ) -> tuple[Tensor, Tensor]:
        time_dim = self._time_dim(td)
        reward, done, terminated = self._flags(td)
        current, nxt = self.state_values(td, next_value=next_value)
        log_pi, log_mu = self._log_probs(td, reward)
        return vtrace_advantage_estimate(
            self.gamma, log_pi, log_mu, current, nxt, reward, done, terminated,
            rho_thresh=self.rho_thresh, c_thresh=self.c_thresh, time_dim=time_dim,
        )

    def value_estimate(self, td: TensorDictBase, *, next_value: Tensor | None = None) -> Tensor:
        """Return the V-trace target ``v`` for every step of ``td`` (``next_value``: see
        :meth:`ValueEstimatorBase.value_estimate`)."""
        return self._compute(td, next_value)[1]

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        """Write ``advantage`` and ``value_target`` into ``td`` and return it."""
        advantage, target = self._compute(td)
        if self.average_adv:
            advantage = (advantage - advantage.mean()) / advantage.std().clamp_min(1e-8)
        td.set(self._keys["advantage"], advantage)
        td.set(self._keys["value_target"], target)
        return td

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, rho_thresh={self.rho_thresh}, c_thresh={self.c_thresh}"
