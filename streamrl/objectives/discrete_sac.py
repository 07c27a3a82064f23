"""SAC for discrete actions (Christodoulou 2019): expectations over actions, no sampling."""

from __future__ import annotations

import math
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import Tensor, nn

from streamrl.data.specs import Categorical, OneHot
from streamrl.objectives import _loss_options as opts
from streamrl.objectives import _sac_common as shared
from streamrl.objectives._utils import action_to_index, check_action_space, check_loss_function
from streamrl.objectives.common import BOOTSTRAP_ESTIMATORS, TD_KEYS, LossModule
from streamrl.objectives.value.common import ValueEstimators

__all__ = ["DiscreteSACLoss"]


class DiscreteSACLoss(shared.Temperature, LossModule):
    """Discrete soft actor-critic with ``num_qvalue_nets`` Q-networks run in one vmap call.

    ``actor_network`` is probabilistic with a ``Categorical``/``OneHotCategorical``
    distribution (its ``logits`` give ``log pi(.|s)``); ``qvalue_network`` writes
    ``action_value`` (``[*batch, num_actions]``). With ``p = pi(.|s)``:

    - ``loss_actor = mean sum_a p(a) (alpha * log p(a) - min_i Q_i(s, a))`` (critic frozen);
    - ``loss_qvalue = sum_i mean d(Q_i(s, a), y)``, with
      ``y = r + gamma * (1 - terminated) * sum_a' p'(a') (min_i Q'_i(s', a') - alpha log p'(a'))``;
    - ``loss_alpha = -mean(log_alpha * (target_entropy - H(p)))``.

    ``target_entropy="auto"`` is ``target_entropy_weight * log(num_actions)``.

    ``action_space`` is the layout of the input's action: ``"one_hot"``/``"one-hot"``,
    ``"categorical"``, or a ``OneHot``/``Categorical`` spec (which also gives
    ``num_actions``); by default it is read from each action's shape and dtype.

    Output: ``loss_actor``, ``loss_qvalue``, ``loss_alpha``, and the detached diagnostics
    ``alpha``, ``entropy`` and ``td_error``. :attr:`log_alpha` is the learned log-temperature.

    TorchRL's shared options (see :class:`SACLoss`): ``separate_losses``, ``reduction``,
    ``use_prioritized_weights`` (key ``priority_weight``), ``scalar_output_mode``,
    ``skip_done_states``, ``deactivate_vmap``; ``priority_key`` is refused as in TorchRL 0.14.
    """

    default_keys = {
        "action": "action",
        "action_value": "action_value",
        "priority_weight": opts.PRIORITY_WEIGHT_KEY,
        **TD_KEYS,
    }
    default_value_estimator = ValueEstimators.TD0
    supported_value_estimators = BOOTSTRAP_ESTIMATORS
    #: the next-state action comes from the live actor: no target actor is kept (the
    #: attribute SAC's ``delay_actor=`` sets)
    delay_actor = False

    def __init__(
        self,
        actor_network: nn.Module,
        qvalue_network: nn.Module,
        *,
        action_space: Any = None,
        num_actions: int | None = None,
        num_qvalue_nets: int = 2,
        loss_function: str = "smooth_l1",
        alpha_init: float = 1.0,
        min_alpha: float | None = None,
        max_alpha: float | None = None,
        fixed_alpha: bool = False,
        target_entropy_weight: float = 0.98,
        target_entropy: float | str = "auto",
        delay_qvalue: bool = True,
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
            self, priority_key=priority_key, reduction=reduction,
            use_prioritized_weights=use_prioritized_weights,
            scalar_output_mode=scalar_output_mode, separate_losses=separate_losses,
            skip_done_states=skip_done_states, deactivate_vmap=deactivate_vmap,
        )
        if isinstance(action_space, (OneHot, Categorical)):
            if num_actions is not None and num_actions != action_space.n:
                raise ValueError(
                    f"DiscreteSACLoss: num_actions={num_actions} but the action_space spec has "
                    f"{action_space.n} actions"
                )
            num_actions = int(action_space.n)
        if not isinstance(num_actions, int) or num_actions < 2:
            raise ValueError(
                "DiscreteSACLoss needs num_actions (an int >= 2) or a OneHot/Categorical "
                f"action_space spec, found num_actions={num_actions!r}"
            )
        self.num_actions = num_actions
        self.loss_function = check_loss_function(loss_function)
        self.action_space = check_action_space(action_space, "DiscreteSACLoss")
        if target_entropy == "auto":
            target_entropy = target_entropy_weight * math.log(num_actions)
        if not isinstance(target_entropy, (int, float)):
            raise TypeError(f"target_entropy must be 'auto' or a float, found {target_entropy!r}")
        target_entropy = float(target_entropy)
        self.delay_qvalue = delay_qvalue
        shared.register_actor_critic(self, actor_network, qvalue_network,
                                     num_qvalue_nets=num_qvalue_nets, delay_qvalue=delay_qvalue)
        shared.hold_target_entropy(self, target_entropy)
        self.entropy_coef = shared.EntropyCoefficient(
            alpha_init, fixed=fixed_alpha, min_alpha=min_alpha, max_alpha=max_alpha
        )

    def _log_probs(self, td: TensorDictBase, params: TensorDictBase) -> Tensor:
        return shared.categorical_log_probs(self, td, params, self.num_actions)

    def _qvalues(self, td: TensorDictBase, params: TensorDictBase) -> Tensor:
        out = self.vmap_network("qvalue_network", td.copy(), params)
        values = self._get(out, "action_value")
        expected = (values.shape[0], *td.batch_size, self.num_actions)
        if values.shape != expected:
            raise ValueError(
                f"DiscreteSACLoss: {self._keys['action_value']!r} must have shape "
                f"{expected[1:]} per network, found {tuple(values.shape[1:])}"
            )
        return values

    def target_value(self, td: TensorDictBase, alpha: Tensor) -> Tensor:
        """The soft value target for every transition of ``td`` (no gradient)."""
        self._require(td, self._next_key("reward"), self._next_key("done"))
        with torch.no_grad():
            next_td = td.get("next")
            log_p, = shared.on_next_states(self, td, lambda nxt: (self._log_probs(
                nxt, self.network_params("actor_network", detach=True)),))
            next_q = self._qvalues(next_td, shared.critic_params(self, target=True)).min(0).values
            next_value = (log_p.exp() * (next_q - alpha * log_p)).sum(-1, keepdim=True)
        return shared.bootstrap(self, td, next_value)

    in_keys = shared.soft_in_keys_property("qvalue_network")

    def _output_keys(self) -> list[str]:
        return shared.soft_output_keys(self)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the actor, Q-value and temperature losses; writes ``td_error``."""
        action = self._get(tensordict, "action")
        batch = tensordict.batch_size
        alpha = self.entropy_coef.alpha()
        log_p = self._log_probs(tensordict, self.network_params("actor_network"))
        probs = log_p.exp()
        q_frozen = self._qvalues(tensordict, shared.critic_params(self).detach()).min(0).values
        loss_actor = (probs * (alpha * log_p - q_frozen)).sum(-1)
        entropy = -(probs * log_p).sum(-1)

        target = self.target_value(tensordict, alpha)
        q_all = self._qvalues(tensordict, shared.critic_params(self))
        index = action_to_index(action, batch, self.num_actions, self.action_space,
                                "DiscreteSACLoss")
        gather_index = index.unsqueeze(-1).expand(q_all.shape[0], *batch, 1)
        pred = q_all.gather(-1, gather_index)
        loss_qvalue, td_error = shared.ensemble_regression(self, tensordict, pred, target,
                                                           key="action_value")
        return opts.loss_output(self, tensordict, {
            "loss_actor": loss_actor,
            "loss_qvalue": loss_qvalue,
            "loss_alpha": self.entropy_coef.per_sample_loss(self.target_entropy - entropy),
        }, {"td_error": td_error}, {"alpha": alpha, "entropy": entropy.detach().mean()})
