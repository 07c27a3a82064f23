"""CrossQ loss (Bhatt et al. 2024): SAC without target networks, the critic normalised over
current and next transitions in one batch."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from tensordict import TensorDictBase
from torch import nn

from streamrl.data.specs import TensorSpec
from streamrl.objectives import _loss_options as opts
from streamrl.objectives import _sac_common as shared
from streamrl.objectives._utils import check_loss_function
from streamrl.objectives.common import TD_KEYS, LossModule
from streamrl.objectives.value.common import ValueEstimators

__all__ = ["CrossQLoss"]


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class CrossQLoss(shared.Temperature, LossModule):
    """CrossQ: a SAC-style loss with no target networks.

    The Q-network (typically with batch normalisation, e.g. ``nn.BatchNorm1d``) is copied
    ``num_qvalue_nets`` times. The critic runs *once* on the concatenation of the current
    pairs ``(s, a)`` and the next pairs ``(s', a' ~ pi(s'))``, so that its normalisation
    statistics cover both; the next-state half, detached, gives the target:

    - ``loss_qvalue = sum_i mean d(Q_i(s, a), y)``, ``y = r + gamma * (1 - terminated) *
      (min_i Q_i(s', a') - alpha * log pi(a'|s'))``;
    - ``loss_actor = mean(alpha * log pi(a~|s) - min_i Q_i(s, a~))``, the critic frozen and
      in eval mode (running statistics, none updated);
    - ``loss_alpha = -mean(log_alpha * (log pi(a~|s) + target_entropy))``.

    ``target_entropy="auto"`` is ``-prod(action_spec.shape)`` (the spec given, else the
    actor's, else the first action's size). ``td_error`` (max over copies of
    ``|Q_i - y|``) is written into the input. Output: the three losses, ``alpha`` and
    ``entropy``; :attr:`log_alpha` is the learned log-temperature.

    TorchRL's shared options (see :class:`SACLoss`): ``action_spec``, ``separate_losses``,
    ``reduction``, ``scalar_output_mode``, ``deactivate_vmap``; ``priority_key`` is refused
    as in TorchRL 0.14.

    A batch-normalised critic (the point of CrossQ) built with :class:`~streamrl.modules.MLP`:

    >>> from tensordict import TensorDict
    >>> from tensordict.nn import NormalParamExtractor, TensorDictModule
    >>> from streamrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
    >>> critic = ValueOperator(MLP(in_features=5, out_features=1, num_cells=[8],
    ...                            norm_class=nn.BatchNorm1d, activation_class=nn.ReLU),
    ...                        in_keys=["observation", "action"])
    >>> loc_scale = TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()),
    ...                              in_keys=["observation"], out_keys=["loc", "scale"])
    >>> actor = ProbabilisticActor(loc_scale, in_keys=["loc", "scale"],
    ...                            distribution_class=TanhNormal)
    >>> loss = CrossQLoss(actor, critic)
    >>> td = TensorDict({"observation": torch.randn(4, 3), "action": torch.rand(4, 2) * 2 - 1,
    ...     "next": {"observation": torch.randn(4, 3), "reward": torch.randn(4, 1),
    ...              "done": torch.zeros(4, 1, dtype=torch.bool)}}, [4])
    >>> sorted(loss(td).keys())
    ['alpha', 'entropy', 'loss_actor', 'loss_alpha', 'loss_qvalue']
    """

    default_keys = {
        "action": "action",
        "state_action_value": "state_action_value",
        **TD_KEYS,
    }
    default_value_estimator = ValueEstimators.TD0
    supported_value_estimators = (ValueEstimators.TD0,)

    def __init__(
        self,
        actor_network: nn.Module,
        qvalue_network: nn.Module,
        *,
        num_qvalue_nets: int = 2,
        loss_function: str = "smooth_l1",
        alpha_init: float = 1.0,
        min_alpha: float | None = None,
        max_alpha: float | None = None,
        action_spec: TensorSpec | None = None,
        fixed_alpha: bool = False,
        target_entropy: float | str = "auto",
        priority_key: str | None = None,
        separate_losses: bool = False,
        reduction: str | None = None,
        deactivate_vmap: bool = False,
        scalar_output_mode: str | None = None,
    ) -> None:
        super().__init__()
        opts.apply_options(
            self, priority_key=priority_key, reduction=reduction,
            scalar_output_mode=scalar_output_mode, separate_losses=separate_losses,
            deactivate_vmap=deactivate_vmap,
        )
        if not isinstance(num_qvalue_nets, int) or num_qvalue_nets < 1:
            raise ValueError(f"num_qvalue_nets must be a positive int, found {num_qvalue_nets!r}")
        self.loss_function = check_loss_function(loss_function)
        self.num_qvalue_nets = num_qvalue_nets
        target_entropy = shared.resolve_target_entropy(target_entropy, action_spec,
                                                       actor_network)
        shared.register_actor_critic(self, actor_network, qvalue_network,
                                     num_qvalue_nets=num_qvalue_nets, delay_qvalue=False)
        shared.hold_target_entropy(self, target_entropy)
        self.entropy_coef = shared.EntropyCoefficient(
            alpha_init, fixed=fixed_alpha, min_alpha=min_alpha, max_alpha=max_alpha
        )

    in_keys = shared.soft_in_keys_property("qvalue_network")

    def _output_keys(self) -> list[str]:
        return shared.soft_output_keys(self)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the Q-value, actor and temperature losses; writes ``td_error``."""
        action = self._get(tensordict, "action")
        self._require(tensordict, self._next_key("reward"), self._next_key("done"))
        td = tensordict.reshape(-1)
        action = action.reshape(td.shape[0], *action.shape[tensordict.batch_dims:])
        n = td.shape[0]
        alpha = self.entropy_coef.alpha()
        next_td = td.get("next")
        with torch.no_grad():
            next_action, next_log_prob = shared.fresh_action(self, next_td, 1, frozen=True)
        # one critic pass over current and next pairs: shared normalisation statistics
        in_keys = self.network_in_keys("qvalue_network")
        keys = [k for k in in_keys if k != self._keys["action"]] or None
        joint = torch.cat([td.select(*keys) if keys else td.exclude("next"),
                           next_td.select(*keys) if keys else next_td], 0)
        q_all = shared.qvalues_at(self, joint, torch.cat([action, next_action], 0),
                                  shared.critic_params(self))
        pred, q_next = q_all[:, :n], q_all[:, n:].detach()
        with torch.no_grad():
            next_value = q_next.min(0).values - alpha * next_log_prob.reshape(-1, 1)
        target = shared.bootstrap(self, td, next_value)
        loss_qvalue = shared.ensemble_regression(self, tensordict, pred, target)[0]
        # actor: fresh action; the critic frozen, in eval mode
        new_action, log_prob = shared.fresh_action(self, td, 1)
        with _eval_mode(self.network_template("qvalue_network")):
            q_new = shared.qvalues_at(self, td, new_action,
                                      shared.critic_params(self).detach())
        loss_actor = alpha * log_prob - q_new.min(0).values.reshape(log_prob.shape)
        terms = shared.entropy_terms(self, log_prob, new_action, 1, alpha, per_sample=True)
        batch = tensordict.batch_size
        return opts.loss_output(self, tensordict, {
            "loss_actor": loss_actor.reshape(batch),
            "loss_qvalue": loss_qvalue,
            "loss_alpha": terms.pop("loss_alpha").reshape(batch),
        }, scalars=terms)
