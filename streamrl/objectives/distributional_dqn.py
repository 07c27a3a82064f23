"""Distributional DQN loss (C51, Bellemare et al. 2017): cross-entropy to the projected
Bellman target distribution."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import Tensor, nn

from streamrl.objectives._utils import (
    action_space_of,
    action_to_index,
    check_reduction,
    reduce_loss,
    var_nums_of,
)
from streamrl.objectives.common import TD_KEYS, LossModule, _output
from streamrl.objectives.value.common import ValueEstimators

__all__ = ["DistributionalDQNLoss", "project_distribution"]

def project_distribution(probs: Tensor, support: Tensor, reward: Tensor,
                         gamma: float | Tensor, not_terminal: Tensor) -> Tensor:
    """Project ``r + gamma * not_terminal * z`` (``z`` carrying ``probs``) back onto ``support``.

    ``probs`` is ``[B, n_atoms]``, ``reward``, ``not_terminal`` (and ``gamma`` when a
    tensor) ``[B, 1]``. Each shifted
    atom, clamped to ``[support[0], support[-1]]``, splits its mass between its two
    neighbouring atoms in proportion to the distance (the C51 projection; the support must be
    evenly spaced).

    >>> z = torch.tensor([0.0, 1.0, 2.0])
    >>> project_distribution(torch.tensor([[0.0, 1.0, 0.0]]), z, torch.tensor([[0.5]]), 1.0,
    ...                      torch.ones(1, 1))
    tensor([[0.0000, 0.5000, 0.5000]])
    """
    n_atoms = support.numel()
    v_min, v_max = support[0], support[-1]
    delta = (v_max - v_min) / (n_atoms - 1)
    shifted = (reward + gamma * not_terminal * support).clamp(v_min, v_max)
    pos = (shifted - v_min) / delta
    low = pos.floor().clamp(0, n_atoms - 1)
    w_up = pos - low
    up = (low + 1).clamp(max=n_atoms - 1)
    out = torch.zeros_like(probs)
    out.scatter_add_(-1, low.long(), probs * (1 - w_up))
    out.scatter_add_(-1, up.long(), probs * w_up)
    return out


class DistributionalDQNLoss(LossModule):
    """C51 loss: ``-sum_i m_i log p_i(s, a)``, ``m`` the target distribution projected onto
    the support.

    ``value_network`` writes ``action_value``, log-probabilities ``[*B, n_atoms, n_actions]``
    (a :class:`~streamrl.modules.DistributionalQValueActor`), and has a ``support``
    attribute (the return of each atom, evenly spaced). The target distribution is that of
    the greedy next action (highest expected return) under the target network (the live
    one with ``delay_value=False``), shifted by ``reward + gamma * (1 - terminated) * z``
    and projected onto the support (:func:`project_distribution`). ``terminated`` falls back
    on ``done`` when absent; with ``steps_to_next_obs`` in the input (n-step transitions,
    :class:`~streamrl.data.postprocs.MultiStep`) the discount is ``gamma ** steps``. The
    per-sample cross-entropy is written into the input as ``td_error`` (priority) and
    reduced with ``reduction``.

    With ``"mult_one_hot"`` actions (a :class:`~streamrl.modules.DistributionalQValueActor`
    with ``var_nums``) each component is a branch with its own return distribution: the
    loss is the sum over components of their cross-entropies, each against the projected
    distribution of that component's greedy next action.

    The target is always the bootstrapped one-step (or n-step) distribution:
    :meth:`make_value_estimator` takes ``ValueEstimators.TD0`` (and ``gamma=`` to change
    the discount) and raises ``NotImplementedError`` for any other estimator.

    Args:
        value_network: the distributional Q network.
        gamma: discount factor (keyword, required).
        delay_value: keep target parameters (update them with ``SoftUpdate``/``HardUpdate``).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (loss with the batch shape).

    Output: ``loss``.

    >>> from tensordict import TensorDict
    >>> from streamrl.modules import DistributionalQValueActor
    >>> actor = DistributionalQValueActor(nn.Sequential(nn.Linear(4, 10), nn.Unflatten(-1, (5, 2))),
    ...     support=torch.linspace(-1, 1, 5), action_space="categorical")
    >>> loss = DistributionalDQNLoss(actor, gamma=0.9)
    >>> td = TensorDict({"observation": torch.randn(3, 4), "action": torch.tensor([0, 1, 1]),
    ...                  "next": {"observation": torch.randn(3, 4), "reward": torch.ones(3, 1),
    ...                           "done": torch.zeros(3, 1, dtype=torch.bool)}}, [3])
    >>> out = loss(td)
    >>> out["loss"].shape, td["td_error"].shape
    (torch.Size([]), torch.Size([3]))
    """

    default_keys = {"action": "action", "action_value": "action_value",
                    "steps_to_next_obs": "steps_to_next_obs", **TD_KEYS}
    default_value_estimator = ValueEstimators.TD0
    supported_value_estimators = (ValueEstimators.TD0,)

    def __init__(
        self,
        value_network: nn.Module,
        *,
        gamma: float,
        delay_value: bool = True,
        reduction: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(value_network, TensorDictModuleBase):
            raise TypeError(
                "DistributionalDQNLoss: value_network must be a TensorDict module writing "
                f"action_value (e.g. DistributionalQValueActor), found {type(value_network).__name__}"
            )
        support = getattr(value_network, "support", None)
        if not isinstance(support, Tensor) or support.ndim != 1 or support.numel() < 2:
            raise TypeError(
                "DistributionalDQNLoss: value_network must have a 1-D `support` tensor of at "
                f"least 2 atoms (a DistributionalQValueActor), found {support!r}"
            )
        gaps = support[1:] - support[:-1]
        if not bool((gaps > 0).all()) or not torch.allclose(gaps, gaps[0].expand_as(gaps)):
            raise ValueError(
                f"DistributionalDQNLoss: support must be evenly spaced and increasing, found "
                f"{support.tolist()}"
            )
        if not isinstance(gamma, (int, float)) or not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"DistributionalDQNLoss: gamma must be a float in [0, 1], found {gamma!r}")
        reduction = check_reduction(reduction, "DistributionalDQNLoss")
        self.gamma = float(gamma)
        self.delay_value = bool(delay_value)
        self.reduction = reduction
        self.action_space = action_space_of(value_network)
        self.var_nums = var_nums_of(value_network) if self.action_space == "mult_one_hot" else None
        self.register_buffer("support", support.detach().clone().float())
        self.register_network("value_network", value_network, create_target=self.delay_value)

    def _log_probs(self, td: TensorDictBase, params: TensorDictBase) -> Tensor:
        logp = self.network_output("value_network", td, "action_value", params)
        n_atoms = self.support.numel()
        if logp.ndim != td.batch_dims + 2 or logp.shape[td.batch_dims] != n_atoms:
            raise ValueError(
                f"DistributionalDQNLoss: {self._keys['action_value']!r} must have shape "
                f"{(*td.batch_size, n_atoms, 'n_actions')}, found {tuple(logp.shape)}"
            )
        return logp

    def make_value_estimator(self, value_type: Any = None, **hyperparams: Any
                             ) -> DistributionalDQNLoss:
        """Select the (only) target: ``ValueEstimators.TD0`` (or ``None``), the bootstrapped
        distribution computed in :meth:`forward`; ``gamma=`` replaces the discount. Any
        other estimator or hyperparameter raises ``NotImplementedError``. Returns ``self``."""
        if isinstance(value_type, str):
            value_type = ValueEstimators[value_type] if value_type in ValueEstimators.__members__ \
                else ValueEstimators(value_type)
        if value_type not in (None, ValueEstimators.TD0):
            raise NotImplementedError(
                f"DistributionalDQNLoss supports value estimators ['TD0'] (the projected "
                f"one-step distribution), found {value_type!r}"
            )
        unknown = sorted(set(hyperparams) - {"gamma"})
        if unknown:
            raise NotImplementedError(
                f"DistributionalDQNLoss: TD0 takes gamma only, found {unknown}"
            )
        if "gamma" in hyperparams:
            gamma = hyperparams["gamma"]
            if not isinstance(gamma, (int, float)) or not 0.0 <= float(gamma) <= 1.0:
                raise ValueError(f"gamma must be a float in [0, 1], found {gamma!r}")
            self.gamma = float(gamma)
        self.value_type = ValueEstimators.TD0
        return self

    def _discount(self, td: TensorDictBase) -> float | Tensor:
        steps = td.get(self._keys["steps_to_next_obs"], None)
        if steps is None:
            return self.gamma
        return self.gamma ** steps.reshape(td.shape[0], 1).to(torch.get_default_dtype())

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the C51 loss; writes ``td_error`` (per-sample cross-entropy) into the input."""
        action = self._get(tensordict, "action")
        self._require(tensordict, self._next_key("reward"), self._next_key("done"))
        td = tensordict.reshape(-1) if tensordict.batch_dims != 1 else tensordict
        action = td.get(self._keys["action"])
        logp = self._log_probs(td, self.network_params("value_network"))
        with torch.no_grad():
            params = self.network_params("value_network", target=self.delay_value, detach=True)
            next_p = self._log_probs(td.get("next"), params).exp()
            reward = td.get(self._next_key("reward"))
            term = td.get(self._next_key("terminated"), None)
            if term is None:
                term = td.get(self._next_key("done"))
            if reward.shape != (td.shape[0], 1) or term.shape != reward.shape:
                raise ValueError(
                    "DistributionalDQNLoss: reward and terminated must have shape batch + [1], "
                    f"found {tuple(reward.shape)} and {tuple(term.shape)}"
                )
            gamma = self._discount(td)
        if self.action_space == "mult_one_hot":
            if action.shape != (td.shape[0], logp.shape[-1]):
                raise ValueError(
                    f"DistributionalDQNLoss: mult_one_hot action must have shape "
                    f"{(td.shape[0], logp.shape[-1])}, found {tuple(action.shape)}"
                )
            branches = zip(logp.split(self.var_nums, -1), next_p.split(self.var_nums, -1),
                           action.split(self.var_nums, -1))
            per_sample = sum(
                self._cross_entropy(lp, nxt, a.argmax(-1), reward, gamma, term)
                for lp, nxt, a in branches
            )
        else:
            index = action_to_index(action, td.batch_size, logp.shape[-1], self.action_space,
                                    "DistributionalDQNLoss")
            per_sample = self._cross_entropy(logp, next_p, index, reward, gamma, term)
        tensordict.set(self._keys["priority"],
                       per_sample.detach().reshape(tensordict.batch_size))
        loss = reduce_loss(per_sample, self.reduction)
        if self.reduction == "none":
            loss = loss.reshape(tensordict.batch_size)
            return TensorDict({"loss": loss}, batch_size=loss.shape)
        return _output(loss=loss)

    def _cross_entropy(self, logp: Tensor, next_p: Tensor, index: Tensor, reward: Tensor,
                       gamma: float | Tensor, term: Tensor) -> Tensor:
        """Per-sample ``-sum_i m_i log p_i(s, a)`` over actions ``[B, n_atoms, n]``."""
        n_atoms = self.support.numel()
        logp_a = logp.gather(-1, index.view(-1, 1, 1).expand(-1, n_atoms, 1)).squeeze(-1)
        with torch.no_grad():
            support = self.support.to(next_p)
            best = (next_p * support.unsqueeze(-1)).sum(-2).argmax(-1)
            next_p_a = next_p.gather(-1, best.view(-1, 1, 1).expand(-1, n_atoms, 1)).squeeze(-1)
            target = project_distribution(next_p_a, support, reward.to(next_p),
                                          gamma, (~term.bool()).to(next_p))
        return -(target * logp_a).sum(-1)
