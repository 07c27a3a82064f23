"""CQL loss (Kumar et al. 2020, conservative Q-learning) for continuous actions, on SAC."""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from tensordict import TensorDictBase
from torch import Tensor, nn

from streamrl.data.specs import TensorSpec
from streamrl.objectives import _loss_options as opts
from streamrl.objectives import _sac_common as shared
from streamrl.objectives._conservative import conservative_penalty
from streamrl.objectives._utils import check_loss_function, sum_trailing
from streamrl.objectives.common import BOOTSTRAP_ESTIMATORS, TD_KEYS, LossModule
from streamrl.objectives.value.common import ValueEstimators

__all__ = ["CQLLoss"]

#: the largest Lagrange multiplier of the penalty (as in the paper's code)
MAX_ALPHA_PRIME = 1e6


def _positive(owner: str, name: str, value: Any, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(
            f"{owner}: {name} must be a float {'>= 0' if allow_zero else '> 0'}, found {value!r}"
        )
    return float(value)


class CQLLoss(shared.Temperature, LossModule):
    """Conservative Q-learning on top of SAC, continuous actions in ``[-1, 1]``.

    ``actor_network`` is probabilistic with a reparameterisable distribution (e.g.
    ``TanhNormal``); ``qvalue_network`` writes ``state_action_value`` and is copied twice
    (twin critics, with target copies). With ``a`` the dataset's action:

    - ``loss_qvalue = sum_i mean d(Q_i(s, a), y)``, ``y = r + gamma * (1 - terminated) *
      min_i Q'_i(s', a')``, ``a' ~ pi(s')`` (``deterministic_backup=False`` subtracts
      ``alpha * log pi(a'|s')`` as SAC does; ``max_q_backup=True`` takes instead, for each
      critic, the largest of ``num_random`` sampled ``a'`` before the min over critics);
    - ``loss_cql = sum_i mean min_q_weight * (T * logsumexp_j((Q_i(s, a_j) - log mu(a_j)) / T)
      - Q_i(s, a))``: the conservative penalty, ``T = temperature``, over ``3 * num_random``
      actions ``a_j`` per state: uniform in ``[-1, 1]`` (``log mu = -d log 2``) and sampled
      from the policy at ``s`` and at ``s'`` (``log mu = log pi``), all valued at ``s``
      (the importance-sampled estimate of the paper's CQL(H)); no gradient reaches the actor;
    - ``loss_actor = mean(alpha * log pi(a~|s) - min_i Q_i(s, a~))``, ``a~ ~ pi(s)`` (critics
      frozen), and ``loss_actor_bc = mean(alpha * log pi(a~|s) - log pi(a|s))``, the
      behaviour-cloning warm-up objective: train on one of the two, not their sum;
    - ``loss_alpha``: SAC's temperature loss.

    With ``with_lagrange=True`` the penalty's weight is learned: ``loss_cql`` is multiplied by
    ``alpha' = exp(log_alpha_prime)`` (detached, at most 1e6) after subtracting
    ``lagrange_thresh`` per critic, and ``loss_alpha_prime = -mean_i alpha' *
    (penalty_i - lagrange_thresh)`` (penalty detached) raises ``alpha'`` while the penalty
    stays above the threshold.

    Output: ``loss_actor``, ``loss_actor_bc``, ``loss_qvalue``, ``loss_cql``, ``loss_alpha``
    (``loss_alpha_prime`` with the Lagrange multiplier) and the detached ``alpha`` and
    ``entropy``. ``td_error`` (largest ``|Q_i - y|``) is written into the input.

    TorchRL's options (see :class:`SACLoss`): ``delay_actor`` (the next action ``a'`` comes
    from a target copy of the actor), ``reduction``, ``scalar_output_mode``,
    ``deactivate_vmap``, the temperature's ``alpha_init`` / ``min_alpha`` / ``max_alpha`` /
    ``fixed_alpha`` / ``target_entropy`` / ``action_spec``; ``gamma`` is refused as in
    TorchRL 0.14.

    >>> from tensordict import TensorDict
    >>> from tensordict.nn import NormalParamExtractor, TensorDictModule
    >>> from streamrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
    >>> actor = ProbabilisticActor(TensorDictModule(
    ...     nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()), ["observation"], ["loc", "scale"]),
    ...     in_keys=["loc", "scale"], distribution_class=TanhNormal)
    >>> qvalue = ValueOperator(MLP(in_features=5, out_features=1, num_cells=[8]),
    ...                        in_keys=["observation", "action"])
    >>> loss = CQLLoss(actor, qvalue, num_random=4)
    >>> td = TensorDict({"observation": torch.randn(2, 3), "action": torch.rand(2, 2) * 2 - 1,
    ...     "next": {"observation": torch.randn(2, 3), "reward": torch.randn(2, 1),
    ...              "done": torch.zeros(2, 1, dtype=torch.bool)}}, [2])
    >>> sorted(k for k in loss(td).keys() if k.startswith("loss_"))
    ['loss_actor', 'loss_actor_bc', 'loss_alpha', 'loss_cql', 'loss_qvalue']
    """

    default_keys = {
        "action": "action",
        "value": "state_value",
        "state_action_value": "state_action_value",
        "log_prob": "_log_prob",
        "pred_q1": "pred_q1",
        "pred_q2": "pred_q2",
        "cql_q1_loss": "cql_q1_loss",
        "cql_q2_loss": "cql_q2_loss",
        **TD_KEYS,
    }
    default_value_estimator = ValueEstimators.TD0
    supported_value_estimators = BOOTSTRAP_ESTIMATORS
    #: twin critics, as in TorchRL (no ``num_qvalue_nets`` argument)
    num_qvalue_nets = 2

    def __init__(
        self,
        actor_network: nn.Module,
        qvalue_network: nn.Module,
        *,
        loss_function: str = "smooth_l1",
        alpha_init: float = 1.0,
        min_alpha: float | None = None,
        max_alpha: float | None = None,
        action_spec: TensorSpec | None = None,
        fixed_alpha: bool = False,
        target_entropy: str | float = "auto",
        delay_actor: bool = False,
        delay_qvalue: bool = True,
        gamma: float | None = None,
        temperature: float = 1.0,
        min_q_weight: float = 1.0,
        max_q_backup: bool = False,
        deterministic_backup: bool = True,
        num_random: int = 10,
        with_lagrange: bool = False,
        lagrange_thresh: float = 0.0,
        reduction: str | None = None,
        deactivate_vmap: bool = False,
        scalar_output_mode: str | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        opts.apply_options(
            self, gamma=gamma, reduction=reduction, scalar_output_mode=scalar_output_mode,
            delay_actor=delay_actor, delay_qvalue=delay_qvalue, max_q_backup=max_q_backup,
            deterministic_backup=deterministic_backup, with_lagrange=with_lagrange,
            deactivate_vmap=deactivate_vmap,
        )
        self.loss_function = check_loss_function(loss_function)
        self.temperature = _positive(owner, "temperature", temperature)
        self.min_q_weight = _positive(owner, "min_q_weight", min_q_weight, allow_zero=True)
        if isinstance(num_random, bool) or not isinstance(num_random, int) or num_random < 1:
            raise ValueError(f"{owner}: num_random must be an int >= 1, found {num_random!r}")
        self.num_random = num_random
        if isinstance(lagrange_thresh, bool) or not isinstance(lagrange_thresh, (int, float)):
            raise ValueError(f"{owner}: lagrange_thresh must be a float, found {lagrange_thresh!r}")
        self.target_action_gap = float(lagrange_thresh)
        target_entropy = shared.resolve_target_entropy(target_entropy, action_spec,
                                                       actor_network)
        shared.register_actor_critic(self, actor_network, qvalue_network,
                                     num_qvalue_nets=self.num_qvalue_nets,
                                     delay_qvalue=self.delay_qvalue, delay_actor=self.delay_actor)
        shared.hold_target_entropy(self, target_entropy)
        self.entropy_coef = shared.EntropyCoefficient(
            alpha_init, fixed=fixed_alpha, min_alpha=min_alpha, max_alpha=max_alpha
        )
        if with_lagrange:
            self.log_alpha_prime = nn.Parameter(torch.zeros(()))

    # ---------------------------------------------------------------- target
    def target_value(self, td: TensorDictBase, alpha: Tensor) -> Tensor:
        """The critics' target for every transition of ``td`` (no gradient), ``[*batch, 1]``."""
        if not self.max_q_backup:
            next_td, next_action, next_log_prob, params = shared.next_step(self, td)
            with torch.no_grad():
                next_q = shared.qvalues_at(self, next_td, next_action, params).min(0).values
                if not self.deterministic_backup:
                    next_q = next_q - alpha * next_log_prob.reshape(next_q.shape)
            return shared.bootstrap(self, td, next_q)
        self._require(td, self._next_key("reward"), self._next_key("done"))
        with torch.no_grad():
            many = td.get("next").expand(self.num_random, *td.batch_size)
            actor = self.network_params("actor_network", target=self.delay_actor, detach=True)
            actions, _ = shared.sample_with_log_prob(
                self.network_dist("actor_network", many.copy(), actor), many.batch_dims)
            q = shared.qvalues_at(self, many, actions, shared.critic_params(self, target=True))
            next_q = q.max(1).values.min(0).values  # best sampled action, then the min critic
        return shared.bootstrap(self, td, next_q)

    # ---------------------------------------------------------------- penalty
    def _sampled_actions(self, td: TensorDictBase, like: Tensor) -> tuple[Tensor, Tensor]:
        """The ``3 * num_random`` actions of the penalty per state, ``[3R, *batch, d]``, and
        their log-densities ``[3R, *batch]``: uniform ones, then the policy's at ``s`` and at
        ``s'`` (no gradient)."""
        n, batch = self.num_random, td.batch_size
        dims = like.shape[td.batch_dims:].numel()
        # drawn state-major ([*batch, R], TorchRL's order: a seed gives both the same
        # actions), then the sample dim moved to the front
        uniform = like.new_empty((*batch, n, *like.shape[td.batch_dims:])).uniform_(-1.0, 1.0)
        uniform = uniform.movedim(td.batch_dims, 0)
        in_keys = self.network_in_keys("actor_network")
        now = td.select(*in_keys, strict=False)
        nxt = td.get("next").select(*in_keys, strict=False)
        states = cast(TensorDictBase,
                      torch.cat([now.expand(n, *batch), nxt.expand(n, *batch)], 0))
        with torch.no_grad():
            dist = self.network_dist("actor_network", states,
                                     self.network_params("actor_network", detach=True))
            policy, log_prob = shared.sample_with_log_prob(dist, states.batch_dims)
        actions = torch.cat([uniform, policy.to(uniform.dtype)], 0)
        log_density = torch.cat([uniform.new_full((n, *batch), -dims * math.log(2.0)),
                                 log_prob.to(uniform.dtype)], 0)
        return actions, log_density

    def cql_penalty(self, td: TensorDictBase, pred: Tensor) -> Tensor:
        """Each critic's conservative penalty ``[copies, *batch]`` (gradient to the critics
        only), ``pred`` being the critics' values at the dataset's actions ``[copies,
        *batch]``."""
        action = self._get(td, "action")
        actions, log_density = self._sampled_actions(td, action)
        states = td.select(*self.network_in_keys("qvalue_network"), strict=False)
        states = states.expand(actions.shape[0], *td.batch_size)
        q = shared.qvalues_at(self, states, actions, shared.critic_params(self))
        sampled = q.reshape(q.shape[0], *log_density.shape) - log_density
        return conservative_penalty(sampled, pred, dim=1, temperature=self.temperature,
                                    weight=self.min_q_weight)

    @property
    def alpha_prime(self) -> Tensor | None:
        """The Lagrange multiplier of the penalty (``None`` without ``with_lagrange``)."""
        if not self.with_lagrange:
            return None
        return self.log_alpha_prime.exp().clamp(0.0, MAX_ALPHA_PRIME)

    # ---------------------------------------------------------------- output
    in_keys = shared.soft_in_keys_property("qvalue_network")

    def _output_keys(self) -> list[str]:
        scalars = ["alpha", "entropy"]
        if self.reduction == "none" and self.scalar_output_mode == "exclude":
            scalars = []
        extra = ["loss_alpha_prime"] if self.with_lagrange else []
        return ["loss_actor", "loss_actor_bc", "loss_qvalue", "loss_cql", "loss_alpha", *scalars,
                *extra]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the CQL losses; writes ``td_error`` into ``tensordict``."""
        action = self._get(tensordict, "action")
        batch_dims = tensordict.batch_dims
        alpha = self.entropy_coef.alpha()
        target = self.target_value(tensordict, alpha)
        pred = shared.qvalues_at(self, tensordict, action, shared.critic_params(self))
        losses = {}
        losses["loss_qvalue"], _ = shared.ensemble_regression(self, tensordict, pred, target)
        penalty = self.cql_penalty(tensordict, pred.reshape(pred.shape[0], *tensordict.batch_size))
        for i, name in enumerate(("q1", "q2")):  # (TorchRL writes these entries too)
            tensordict.set(self._keys[f"pred_{name}"], pred[i].detach())
            tensordict.set(self._keys[f"cql_{name}_loss"], penalty[i].detach())
        alpha_prime = self.alpha_prime
        if alpha_prime is None:
            losses["loss_cql"] = penalty.sum(0)
        else:
            losses["loss_cql"] = (alpha_prime.detach() * (penalty - self.target_action_gap)).sum(0)
            losses["loss_alpha_prime"] = -(alpha_prime * (penalty.detach()
                                                          - self.target_action_gap)).mean(0)
        dist = self.network_dist("actor_network", tensordict.copy())
        new_action, log_prob = shared.sample_with_log_prob(dist, batch_dims)
        q_new = shared.qvalues_at(self, tensordict, new_action,
                                  shared.critic_params(self).detach()).min(0).values
        data_log_prob = sum_trailing(dist.log_prob(action), batch_dims)
        losses["loss_actor"] = alpha * log_prob - q_new.reshape(log_prob.shape)
        losses["loss_actor_bc"] = alpha * log_prob - data_log_prob
        tensordict.set(self._keys["log_prob"], log_prob.detach())
        terms = shared.entropy_terms(self, log_prob, new_action, batch_dims, alpha,
                                     per_sample=True)
        losses["loss_alpha"] = terms.pop("loss_alpha")
        return opts.loss_output(self, tensordict, losses, scalars=terms)


def __getattr__(name: str) -> Any:
    # TorchRL's path: torchrl.objectives.cql.DiscreteCQLLoss (here in its own file, which imports
    # this one)
    if name == "DiscreteCQLLoss":
        from streamrl.objectives.discrete_cql import DiscreteCQLLoss

        return DiscreteCQLLoss
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
