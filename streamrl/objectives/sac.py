"""SAC loss for continuous actions (Haarnoja et al. 2018, the version without a V network)."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import Tensor, nn

from streamrl.data.specs import TensorSpec
from streamrl.objectives import _loss_options as opts
from streamrl.objectives import _sac_common as shared
from streamrl.objectives._loss_options import PRIORITY_WEIGHT_KEY
from streamrl.objectives._utils import check_loss_function, distance_loss
from streamrl.objectives.common import BOOTSTRAP_ESTIMATORS, TD_KEYS, LossModule
from streamrl.objectives.value.common import ValueEstimators

__all__ = ["SACLoss"]


class SACLoss(shared.Temperature, LossModule):
    """Soft actor-critic loss, continuous actions, twin (or N) Q-functions.

    The Q-network is copied ``num_qvalue_nets`` times (copy 0 keeps the given weights, the
    others are re-initialised with ``reset_parameters``) and the copies run in one
    :func:`torch.vmap` call. ``actor_network`` must be probabilistic (``get_dist``) with a
    reparameterisable distribution.

    - ``loss_actor = mean(alpha * log pi(a|s) - min_i Q_i(s, a))``, ``a ~ pi`` (critic frozen);
    - ``loss_qvalue = sum_i mean d(Q_i(s, a), y)`` with
      ``y = r + gamma * (1 - terminated) * (min_i Q'_i(s', a') - alpha * log pi(a'|s'))``;
    - ``loss_alpha = -mean(log_alpha * (log pi(a|s) + target_entropy))``.

    ``target_entropy="auto"`` is ``-prod(action_spec.shape)``, the ``action_spec`` given or
    the actor's spec for the action key; without either, minus the size of the first action
    seen. :attr:`target_entropy` holds the number once known, :attr:`log_alpha` the learned
    log-temperature (give it to the temperature's optimizer). ``td_error`` (max over the
    copies of ``|Q_i - y|``) is written into the input.

    Options shared with the other losses:

    - ``delay_actor``: the next-state action of the target comes from a target copy of the
      actor (``target_actor_network_params``, moved by the target updaters);
    - ``separate_losses``: parameters the critic shares with the actor (a common encoder)
      are trained by the actor loss only; the critic uses the actor's, detached;
    - ``reduction`` (``"mean"``, ``"sum"``, ``"none"``: batch-shaped ``loss_*`` entries)
      applies to every loss entry, weighted by the prioritized-replay importance weights
      (key ``priority_weight``) when ``use_prioritized_weights`` is True or ``"auto"`` and
      the batch has them; ``scalar_output_mode`` says what becomes of ``alpha`` and
      ``entropy`` under ``reduction="none"`` (``"exclude"``, or ``"non_tensor"`` entries);
    - ``skip_done_states``: the actor runs on the non-terminal next states only;
    - ``deactivate_vmap``: the critic copies run in a Python loop instead of ``torch.vmap``;
    - ``gamma`` and ``priority_key`` are refused, as in TorchRL 0.14: use
      ``make_value_estimator(gamma=...)`` and ``set_keys(priority=...)``.

    With a ``value_network`` (the first SAC, with a state-value function ``V`` writing
    ``state_value``), the Q target bootstraps from ``V`` instead:
    ``y = r + gamma * (1 - terminated) * V'(s')``, ``V'`` the target copy of ``V``
    (``delay_value=True``, default) or ``V`` itself, and ``V`` is trained by
    ``loss_value = mean d(V(s), min_i Q_i(s, a~) - alpha * log pi(a~|s))`` (``a~`` the actor's
    fresh action, no gradient through that target).

    >>> from tensordict import TensorDict
    >>> from tensordict.nn import NormalParamExtractor, TensorDictModule
    >>> from streamrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
    >>> actor = ProbabilisticActor(TensorDictModule(
    ...     nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()), ["observation"], ["loc", "scale"]),
    ...     in_keys=["loc", "scale"], distribution_class=TanhNormal)
    >>> qvalue = ValueOperator(MLP(in_features=5, out_features=1, num_cells=[8]),
    ...                        in_keys=["observation", "action"])
    >>> value = ValueOperator(nn.Linear(3, 1), in_keys=["observation"])
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
        "priority_weight": PRIORITY_WEIGHT_KEY,
        **TD_KEYS,
    }
    default_value_estimator = ValueEstimators.TD0
    supported_value_estimators = BOOTSTRAP_ESTIMATORS

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
        action_spec: TensorSpec | None = None,
        fixed_alpha: bool = False,
        target_entropy: float | str = "auto",
        delay_actor: bool = False,
        delay_qvalue: bool = True,
        delay_value: bool = True,
        gamma: float | None = None,
        priority_key: str | None = None,
        separate_losses: bool = False,
        reduction: str | None = None,
        skip_done_states: bool = False,
        deactivate_vmap: bool = False,
        use_prioritized_weights: str | bool = "auto",
        scalar_output_mode: str | None = None,
    ) -> None:
        super().__init__()
        opts.apply_options(
            self, gamma=gamma, priority_key=priority_key, reduction=reduction,
            use_prioritized_weights=use_prioritized_weights,
            scalar_output_mode=scalar_output_mode, delay_actor=delay_actor,
            separate_losses=separate_losses, skip_done_states=skip_done_states,
            deactivate_vmap=deactivate_vmap,
        )
        if value_network is not None and not isinstance(value_network, nn.Module):
            raise TypeError(
                f"SACLoss: value_network must be an nn.Module or None, found "
                f"{type(value_network).__name__}"
            )
        self.loss_function = check_loss_function(loss_function)
        target_entropy = shared.resolve_target_entropy(target_entropy, action_spec,
                                                       actor_network)
        self.delay_qvalue = delay_qvalue
        self.num_qvalue_nets = num_qvalue_nets
        shared.register_actor_critic(self, actor_network, qvalue_network,
                                     num_qvalue_nets=num_qvalue_nets, delay_qvalue=delay_qvalue,
                                     delay_actor=self.delay_actor)
        self.has_value = value_network is not None
        self.delay_value = bool(delay_value) and self.has_value
        if value_network is not None:
            self.register_network("value_network", value_network, create_target=self.delay_value)
        shared.hold_target_entropy(self, target_entropy)
        self.entropy_coef = shared.EntropyCoefficient(
            alpha_init, fixed=fixed_alpha, min_alpha=min_alpha, max_alpha=max_alpha
        )


    def _state_value(self, td: TensorDictBase, params: TensorDictBase | None) -> Tensor:
        return shared.state_value(self, td, params)

    def target_value(self, td: TensorDictBase, alpha: Tensor) -> Tensor:
        """The soft value target for every transition of ``td`` (no gradient)."""
        if self.has_value:
            self._require(td, self._next_key("reward"), self._next_key("done"))
            with torch.no_grad():
                params = self.network_params("value_network", target=self.delay_value,
                                             detach=True)
                return shared.bootstrap(self, td, self._state_value(td.get("next"), params))
        next_td, next_action, next_log_prob, params = shared.next_step(self, td)
        with torch.no_grad():
            next_q = shared.qvalues_at(self, next_td, next_action, params).min(0).values
            next_value = next_q - alpha * next_log_prob.reshape(next_q.shape)
        return shared.bootstrap(self, td, next_value)

    in_keys = shared.soft_in_keys_property("qvalue_network")

    def _output_keys(self) -> list[str]:
        return shared.soft_output_keys(self, *(["loss_value"] if self.has_value else []))

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the actor, Q-value and temperature losses; writes ``td_error``."""
        action = self._get(tensordict, "action")
        batch_dims = tensordict.batch_dims
        alpha = self.entropy_coef.alpha()
        # actor: fresh action, critic parameters detached
        new_action, log_prob = shared.fresh_action(self, tensordict, batch_dims)
        q_new = shared.qvalues_at(
            self, tensordict, new_action, shared.critic_params(self).detach()
        )
        q_new_min = q_new.min(0).values.reshape(log_prob.shape)
        losses = {"loss_actor": alpha * log_prob - q_new_min}
        target = self.target_value(tensordict, alpha)
        pred = shared.qvalues_at(self, tensordict, action, shared.critic_params(self))
        losses["loss_qvalue"], td_error = shared.ensemble_regression(self, tensordict, pred,
                                                                     target)
        if self.has_value:
            v_target = (q_new_min - alpha * log_prob).detach().reshape(*tensordict.batch_size, 1)
            v_pred = self._state_value(tensordict, opts.separate_params(self, "value_network"))
            losses["loss_value"] = distance_loss(v_pred, v_target,
                                                 self.loss_function).squeeze(-1)
        terms = shared.entropy_terms(self, log_prob, new_action, batch_dims, alpha,
                                     per_sample=True)
        losses["loss_alpha"] = terms.pop("loss_alpha")
        return opts.loss_output(self, tensordict, losses, {"td_error": td_error}, terms)
