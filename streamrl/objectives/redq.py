"""REDQ loss (Chen et al. 2021): SAC with a large Q ensemble and a random subset for targets."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import Tensor, nn

from streamrl.data.specs import TensorSpec
from streamrl.objectives import _loss_options as opts
from streamrl.objectives import _sac_common as shared
from streamrl.objectives._utils import check_loss_function
from streamrl.objectives.common import BOOTSTRAP_ESTIMATORS, TD_KEYS, LossModule
from streamrl.objectives.value.common import ValueEstimators

__all__ = ["REDQLoss"]


class REDQLoss(shared.Temperature, LossModule):
    """Randomized Ensembled Double Q-learning: a SAC-style loss over ``num_qvalue_nets``
    Q-functions.

    The Q-network is copied ``num_qvalue_nets`` times (copy 0 keeps the given weights, the
    others are re-initialised) and run in one :func:`torch.vmap` call. With ``alpha`` the
    entropy coefficient (clamped to ``[min_alpha, max_alpha]``):

    - ``loss_actor = mean(alpha * log pi(a~|s) - mean_i Q_i(s, a~))``, ``a~ ~ pi``, the mean
      over *all* copies (critic parameters frozen);
    - ``loss_qvalue = sum_i mean d(Q_i(s, a), y)``, ``y = r + gamma * (1 - terminated) *
      (min_{i in M} Q'_i(s', a') - alpha * log pi(a'|s'))`` with ``M`` a fresh random subset
      of ``sub_sample_len`` copies (drawn from the global torch RNG) and ``Q'`` the target
      copies (``delay_qvalue=True``);
    - ``loss_alpha = -mean(log_alpha * (log pi(a~|s) + target_entropy))``.

    ``target_entropy="auto"`` is minus the action dimension. ``td_error`` (max over copies of
    ``|Q_i - y|``) is written into the input. Output: the three losses and the detached
    ``alpha``, ``entropy``, ``state_action_value_actor``, ``action_log_prob_actor``,
    ``next.state_value`` and ``target_value`` (batch means; batch-shaped under
    ``reduction="none"``). :attr:`log_alpha` is the learned log-temperature.

    TorchRL's shared options (see :class:`SACLoss`): ``action_spec`` (for
    ``target_entropy="auto"``), ``separate_losses``, ``reduction``, ``scalar_output_mode``,
    ``deactivate_vmap``; ``gamma`` and ``priority_key`` are refused as in TorchRL 0.14, and
    ``gSDE=True`` is refused (streamrl has no gSDE actor).

    >>> from tensordict import TensorDict
    >>> from tensordict.nn import NormalParamExtractor, TensorDictModule
    >>> from streamrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
    >>> actor = ProbabilisticActor(TensorDictModule(
    ...     nn.Sequential(nn.Linear(3, 8), NormalParamExtractor()), ["observation"], ["loc", "scale"]),
    ...     in_keys=["loc", "scale"], distribution_class=TanhNormal)
    >>> critic = ValueOperator(MLP(in_features=7, out_features=1, num_cells=[]),
    ...                        in_keys=["observation", "action"])
    >>> loss = REDQLoss(actor, critic, num_qvalue_nets=4)
    >>> td = TensorDict({"observation": torch.randn(2, 3), "action": torch.rand(2, 4) * 2 - 1,
    ...     "next": {"observation": torch.randn(2, 3), "reward": torch.randn(2, 1),
    ...              "done": torch.zeros(2, 1, dtype=torch.bool)}}, [2])
    >>> sorted(k for k in loss(td).keys() if k.startswith("loss_"))
    ['loss_actor', 'loss_alpha', 'loss_qvalue']
    """

    default_keys = {
        "action": "action",
        "state_action_value": "state_action_value",
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
        num_qvalue_nets: int = 10,
        sub_sample_len: int = 2,
        loss_function: str = "smooth_l1",
        alpha_init: float = 1.0,
        min_alpha: float | None = 0.1,
        max_alpha: float | None = 10.0,
        action_spec: TensorSpec | None = None,
        fixed_alpha: bool = False,
        target_entropy: float | str = "auto",
        delay_qvalue: bool = True,
        gSDE: bool = False,
        gamma: float | None = None,
        priority_key: str | None = None,
        separate_losses: bool = False,
        reduction: str | None = None,
        deactivate_vmap: bool = False,
        scalar_output_mode: str | None = None,
    ) -> None:
        super().__init__()
        if gSDE is not False:
            raise ValueError(
                "REDQLoss: gSDE=True (noise variables for a gSDE actor) is not supported: "
                "streamrl has no gSDE actor module; leave gSDE=False"
            )
        opts.apply_options(
            self, gamma=gamma, priority_key=priority_key, reduction=reduction,
            scalar_output_mode=scalar_output_mode, separate_losses=separate_losses,
            deactivate_vmap=deactivate_vmap,
        )
        if not isinstance(num_qvalue_nets, int) or num_qvalue_nets < 1:
            raise ValueError(f"num_qvalue_nets must be a positive int, found {num_qvalue_nets!r}")
        if not isinstance(sub_sample_len, int) or not 1 <= sub_sample_len <= num_qvalue_nets:
            raise ValueError(
                f"sub_sample_len must be an int in [1, num_qvalue_nets={num_qvalue_nets}], "
                f"found {sub_sample_len!r}"
            )
        self.loss_function = check_loss_function(loss_function)
        self.num_qvalue_nets = num_qvalue_nets
        self.sub_sample_len = sub_sample_len
        target_entropy = shared.resolve_target_entropy(target_entropy, action_spec,
                                                       actor_network)
        self.delay_qvalue = bool(delay_qvalue)
        shared.register_actor_critic(self, actor_network, qvalue_network,
                                     num_qvalue_nets=num_qvalue_nets,
                                     delay_qvalue=self.delay_qvalue)
        shared.hold_target_entropy(self, target_entropy)
        self.entropy_coef = shared.EntropyCoefficient(
            alpha_init, fixed=fixed_alpha, min_alpha=min_alpha, max_alpha=max_alpha
        )

    def target_value(self, td: TensorDictBase, alpha: Tensor) -> tuple[Tensor, Tensor]:
        """The bootstrapped target and the next-state soft value (no gradient)."""
        next_td, next_action, next_log_prob, params = shared.next_step(self, td)
        with torch.no_grad():
            subset = torch.randperm(self.num_qvalue_nets)[: self.sub_sample_len]
            next_q = shared.qvalues_at(self, next_td, next_action, params[subset]).min(0).values
            next_value = next_q - alpha * next_log_prob.reshape(next_q.shape)
        return shared.bootstrap(self, td, next_value), next_value

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the actor, Q-value and temperature losses; writes ``td_error``."""
        action = self._get(tensordict, "action")
        batch_dims = tensordict.batch_dims
        alpha = self.entropy_coef.alpha()
        new_action, log_prob = shared.fresh_action(self, tensordict, batch_dims)
        q_new = shared.qvalues_at(self, tensordict, new_action,
                                  shared.critic_params(self).detach())
        q_new_mean = q_new.mean(0).reshape(log_prob.shape)
        target, next_value = self.target_value(tensordict, alpha)
        pred = shared.qvalues_at(self, tensordict, action, shared.critic_params(self))
        terms = shared.entropy_terms(self, log_prob, new_action, batch_dims, alpha,
                                     per_sample=True)
        return opts.loss_output(self, tensordict, {
            "loss_actor": alpha * log_prob - q_new_mean,
            "loss_qvalue": shared.ensemble_regression(self, tensordict, pred, target)[0],
            "loss_alpha": terms.pop("loss_alpha"),
        }, self._diagnostics(tensordict.batch_size, {
            "state_action_value_actor": q_new_mean.detach(),
            "action_log_prob_actor": log_prob.detach(),
            "next.state_value": next_value,
            "target_value": target,
        }), terms)

    def _diagnostics(self, batch: torch.Size, values: dict[str, Tensor]) -> dict[str, Tensor]:
        """Batch means, or batch-shaped values under ``reduction="none"``."""
        if self.reduction == "none":
            return {k: v.reshape(batch) for k, v in values.items()}
        return {k: v.mean() for k, v in values.items()}
