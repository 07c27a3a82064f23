"""SAC loss for continuous actions (Haarnoja et al. 2018, the version without a V network)."""

from __future__ import annotations

import math
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import Tensor, nn

from streamrl.objectives._utils import check_loss_function, distance_loss, sum_trailing
from streamrl.objectives.common import TD_KEYS, LossModule, _output
from streamrl.objectives.value.common import ValueEstimators

__all__ = ["SACLoss"]


def sample_with_log_prob(dist: torch.distributions.Distribution, batch_dims: int
                         ) -> tuple[Tensor, Tensor]:
    """A reparameterised sample and its log-probability summed to the batch shape."""
    if not dist.has_rsample:
        raise TypeError(
            f"the actor's distribution {type(dist).__name__} has no rsample; SAC-style losses "
            "need reparameterised samples (e.g. TanhNormal or Normal)"
        )
    joint = getattr(dist, "rsample_and_log_prob", None)
    if callable(joint):  # exact log-prob for squashed distributions that saturate
        action, log_prob = joint()
    else:
        action = dist.rsample()
        log_prob = dist.log_prob(action)
    return action, sum_trailing(log_prob, batch_dims)


def check_target_entropy(target_entropy: Any) -> None:
    """Raise ``TypeError`` unless ``target_entropy`` is ``"auto"`` or a number."""
    if target_entropy != "auto" and not isinstance(target_entropy, (int, float)):
        raise TypeError(f"target_entropy must be 'auto' or a float, found {target_entropy!r}")


def target_entropy_for(target_entropy: float | str, action: Tensor, batch_dims: int) -> float:
    """``target_entropy`` as a number: ``"auto"`` is minus the size of one action (the dims of
    ``action`` after its ``batch_dims`` batch dims)."""
    if target_entropy == "auto":
        return -float(action.shape[batch_dims:].numel())
    return float(target_entropy)


class EntropyCoefficient(nn.Module):
    """The SAC temperature ``alpha``, learned through ``log_alpha`` unless fixed.

    ``loss(entropy_term)`` is ``-log_alpha * entropy_term`` averaged, where ``entropy_term``
    is ``(log_prob + target_entropy)`` (continuous) or ``(target - entropy)`` (discrete), so
    alpha grows when the policy's entropy falls below the target.
    """

    def __init__(self, alpha_init: float, *, fixed: bool, min_alpha: float | None,
                 max_alpha: float | None) -> None:
        super().__init__()
        if not alpha_init > 0:
            raise ValueError(f"alpha_init must be > 0, found {alpha_init}")
        log_alpha = torch.tensor(math.log(alpha_init))
        if fixed:
            self.register_buffer("log_alpha", log_alpha)
        else:
            self.log_alpha = nn.Parameter(log_alpha)
        self.fixed = fixed
        self.min_log = -math.inf if min_alpha is None else math.log(min_alpha)
        self.max_log = math.inf if max_alpha is None else math.log(max_alpha)

    def alpha(self) -> Tensor:
        """The current coefficient, detached."""
        return self.log_alpha.detach().clamp(self.min_log, self.max_log).exp()

    def loss(self, entropy_term: Tensor) -> Tensor:
        """The temperature loss (zero and gradient-free when alpha is fixed)."""
        if self.fixed:
            return torch.zeros((), device=entropy_term.device)
        return -(self.log_alpha * entropy_term.detach()).mean()


class SACLoss(LossModule):
    """Soft actor-critic loss, continuous actions, twin (or N) Q-functions.

    The Q-network is copied ``num_qvalue_nets`` times (copy 0 keeps the given weights, the
    others are re-initialised with ``reset_parameters``) and the copies run in one
    :func:`torch.vmap` call. ``actor_network`` must be probabilistic (``get_dist``) with a
    reparameterisable distribution.

    - ``loss_actor = mean(alpha * log pi(a|s) - min_i Q_i(s, a))``, ``a ~ pi`` (critic frozen);
    - ``loss_qvalue = sum_i mean d(Q_i(s, a), y)`` with
      ``y = r + gamma * (1 - terminated) * (min_i Q'_i(s', a') - alpha * log pi(a'|s'))``;
    - ``loss_alpha = -mean(log_alpha * (log pi(a|s) + target_entropy))``.

    ``target_entropy="auto"`` is minus the action dimension. ``td_error`` (max over the
    copies of ``|Q_i - y|``) is written into the input.

    With a ``value_network`` (the first SAC, with a state-value function ``V`` writing
    ``state_value``), the Q target bootstraps from ``V`` instead:
    ``y = r + gamma * (1 - terminated) * V'(s')``, ``V'`` the target copy of ``V``
    (``delay_value=True``, default) or ``V`` itself, and ``V`` is trained by
    ``loss_value = mean d(V(s), min_i Q_i(s, a~) - alpha * log pi(a~|s))`` (``a~`` the actor's
    fresh action, no gradient through that target).

    >>> from tensordict import TensorDict
    >>> from tensordict.nn import NormalParamExtractor, TensorDictModule
    >>> from streamrl.modules import ProbabilisticActor, TanhNormal
    >>> actor = ProbabilisticActor(TensorDictModule(
    ...     nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()), ["observation"], ["loc", "scale"]),
    ...     in_keys=["loc", "scale"], distribution_class=TanhNormal)
    >>> class Q(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.lin = nn.Linear(5, 1)
    ...     def forward(self, obs, act):
    ...         return self.lin(torch.cat([obs, act], -1))
    >>> qvalue = TensorDictModule(Q(), ["observation", "action"], ["state_action_value"])
    >>> value = TensorDictModule(nn.Linear(3, 1), ["observation"], ["state_value"])
    >>> loss = SACLoss(actor, qvalue, value)
    >>> td = TensorDict({"observation": torch.randn(2, 3), "action": torch.rand(2, 2) * 2 - 1,
    ...     "next": {"observation": torch.randn(2, 3), "reward": torch.randn(2, 1),
    ...              "done": torch.zeros(2, 1, dtype=torch.bool)}}, [2])
    >>> sorted(k for k in loss(td).keys() if k.startswith("loss_"))
    ['loss_actor', 'loss_alpha', 'loss_qvalue', 'loss_value']
    """

    default_keys = {
        "action": "action",
        "state_action_value": "state_action_value",
        "value": "state_value",
        **TD_KEYS,
    }
    default_value_estimator = ValueEstimators.TD0

    def __init__(
        self,
        actor_network: nn.Module,
        qvalue_network: nn.Module,
        value_network: nn.Module | None = None,
        *,
        num_qvalue_nets: int = 2,
        loss_function: str = "smooth_l1",
        alpha_init: float = 1.0,
        min_alpha: float | None = None,
        max_alpha: float | None = None,
        fixed_alpha: bool = False,
        target_entropy: float | str = "auto",
        delay_qvalue: bool = True,
        delay_value: bool = True,
    ) -> None:
        super().__init__()
        if value_network is not None and not isinstance(value_network, nn.Module):
            raise TypeError(
                f"SACLoss: value_network must be an nn.Module or None, found "
                f"{type(value_network).__name__}"
            )
        self.loss_function = check_loss_function(loss_function)
        check_target_entropy(target_entropy)
        self.target_entropy = target_entropy
        self.delay_qvalue = delay_qvalue
        self.num_qvalue_nets = num_qvalue_nets
        self.register_network("actor_network", actor_network)
        self.register_network("qvalue_network", qvalue_network, num_copies=num_qvalue_nets,
                              create_target=delay_qvalue)
        self.has_value = value_network is not None
        self.delay_value = bool(delay_value) and self.has_value
        if value_network is not None:
            self.register_network("value_network", value_network, create_target=self.delay_value)
        self.entropy_coef = EntropyCoefficient(
            alpha_init, fixed=fixed_alpha, min_alpha=min_alpha, max_alpha=max_alpha
        )

    def _target_entropy(self, action: Tensor, batch_dims: int) -> float:
        return target_entropy_for(self.target_entropy, action, batch_dims)

    def _qvalues(self, td: TensorDictBase, action: Tensor, params: TensorDictBase) -> Tensor:
        work = td.copy()
        work.set(self._keys["action"], action)
        out = self.vmap_network("qvalue_network", work, params)
        return self._get(out, "state_action_value")

    def _state_value(self, td: TensorDictBase, params: TensorDictBase) -> Tensor:
        value = self._get(self.call_network("value_network", td.copy(), params), "value")
        if value.shape != (*td.batch_size, 1):
            raise ValueError(
                f"SACLoss: {self._keys['value']!r} must have shape {(*td.batch_size, 1)}, found "
                f"{tuple(value.shape)}"
            )
        return value

    def target_value(self, td: TensorDictBase, alpha: Tensor) -> Tensor:
        """The soft value target for every transition of ``td`` (no gradient)."""
        self._require(td, self._next_key("reward"), self._next_key("done"))
        with torch.no_grad():
            next_td = td.get("next")
            if self.has_value:
                params = self.network_params("value_network", target=self.delay_value,
                                             detach=True)
                next_value = self._state_value(next_td, params)
                work = td.copy()
                work.set(("next", "state_value"), next_value)
                return self.value_estimator.value_estimate(work)
            dist = self.network_dist(
                "actor_network", next_td.copy(), self.network_params("actor_network", detach=True)
            )
            next_action, next_log_prob = sample_with_log_prob(dist, td.batch_dims)
            next_q = self._qvalues(
                next_td, next_action,
                self.network_params("qvalue_network", target=self.delay_qvalue, detach=True),
            ).min(0).values
            next_value = next_q - alpha * next_log_prob.reshape(next_q.shape)
            work = td.copy()
            work.set(("next", "state_value"), next_value)
            return self.value_estimator.value_estimate(work)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the actor, Q-value and temperature losses; writes ``td_error``."""
        action = self._get(tensordict, "action")
        batch_dims = tensordict.batch_dims
        alpha = self.entropy_coef.alpha()
        # actor: fresh action, critic parameters detached
        dist = self.network_dist("actor_network", tensordict.copy())
        new_action, log_prob = sample_with_log_prob(dist, batch_dims)
        q_new = self._qvalues(
            tensordict, new_action, self.network_params("qvalue_network", detach=True)
        )
        q_new_min = q_new.min(0).values.reshape(log_prob.shape)
        loss_actor = (alpha * log_prob - q_new_min).mean()
        # critic
        target = self.target_value(tensordict, alpha)
        pred = self._qvalues(tensordict, action, self.network_params("qvalue_network"))
        if pred.shape[1:] != target.shape:
            raise ValueError(
                f"SACLoss: {self._keys['state_action_value']!r} has shape "
                f"{tuple(pred.shape[1:])} but the reward has shape {tuple(target.shape)}"
            )
        per_net = distance_loss(pred, target.expand_as(pred), self.loss_function)
        loss_qvalue = per_net.reshape(pred.shape[0], -1).mean(-1).sum()
        td_error = (pred.detach() - target).abs().max(0).values
        td_error = td_error.reshape(tensordict.batch_size)
        tensordict.set(self._keys["priority"], td_error)
        # temperature
        target_entropy = self._target_entropy(new_action, batch_dims)
        loss_alpha = self.entropy_coef.loss(log_prob + target_entropy)
        extra = {}
        if self.has_value:
            v_target = (q_new_min - alpha * log_prob).detach().reshape(*tensordict.batch_size, 1)
            v_pred = self._state_value(tensordict, self.network_params("value_network"))
            extra["loss_value"] = distance_loss(v_pred, v_target, self.loss_function).mean()
        return _output(
            loss_actor=loss_actor,
            loss_qvalue=loss_qvalue,
            **extra,
            loss_alpha=loss_alpha,
            alpha=alpha,
            entropy=-log_prob.detach().mean(),
            td_error=td_error,
        )
