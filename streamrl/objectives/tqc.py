"""TQC loss (Kuznetsov et al. 2020): SAC with quantile critics whose pooled target drops its
top atoms."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor, nn

from streamrl.data.specs import TensorSpec
from streamrl.objectives import _loss_options as opts
from streamrl.objectives import _sac_common as shared
from streamrl.objectives.common import TD_KEYS, LossModule
from streamrl.objectives.value.common import ValueEstimators

__all__ = ["TQCLoss", "quantile_huber_loss"]


def quantile_huber_loss(pred: Tensor, target: Tensor, reduce: bool = True) -> Tensor:
    """The quantile Huber loss (``kappa = 1``) of the atoms ``pred`` ``[..., M]`` (quantile
    levels ``tau_m = (2m + 1) / 2M``) against the target samples ``target`` ``[..., K]``,
    averaged over every pair: ``|tau_m - 1{y_k < z_m}| * huber(y_k - z_m)`` (and over the
    leading dims, unless ``reduce=False``: one value per leading index).

    >>> quantile_huber_loss(torch.tensor([0.0]), torch.tensor([2.0]))  # 0.5 * (2 - 0.5)
    tensor(0.7500)
    """
    n_atoms = pred.shape[-1]
    tau = (torch.arange(n_atoms, device=pred.device, dtype=pred.dtype) * 2 + 1) / (2 * n_atoms)
    delta = target.unsqueeze(-2) - pred.unsqueeze(-1)  # [..., M, K]
    abs_delta = delta.abs()
    huber = torch.where(abs_delta <= 1.0, 0.5 * delta.pow(2), abs_delta - 0.5)
    weight = (tau.unsqueeze(-1) - (delta.detach() < 0).to(pred.dtype)).abs()
    return (weight * huber).mean() if reduce else (weight * huber).mean((-2, -1))


class TQCLoss(shared.Temperature, LossModule):
    """Truncated Quantile Critics: ``num_qvalue_nets`` critics each predict ``M`` return
    quantiles (the critic's last output dim); the target pools every target critic's atoms
    at ``(s', a' ~ pi(s'))``, drops the ``top_quantiles_to_drop_per_net * num_qvalue_nets``
    highest and keeps ``K = num_qvalue_nets * (M - top_quantiles_to_drop_per_net)`` atoms:

    - ``y_k = r + gamma * (1 - terminated) * (z'_(k) - alpha * log pi(a'|s'))`` (TD(0), the
      only estimator TQC supports);
    - ``loss_qvalue``: :func:`quantile_huber_loss` of every critic's atoms against all ``y_k``,
      averaged over critics (as in the paper's code);
    - ``loss_actor = mean(alpha * log pi(a~|s) - mean_{n,m} Z_n(s, a~)_m)``, critics frozen;
    - ``loss_alpha`` as in :class:`~streamrl.objectives.SACLoss`.

    ``td_error`` (max over critics of ``|mean_m Z_n(s, a) - mean_k y_k|``) is written into the
    input. Output: the three losses, ``alpha`` and ``entropy``.

    Args:
        actor_network: probabilistic policy with a reparameterisable distribution.
        qvalue_network: critic writing ``state_action_value`` ``[*B, M]``; copied
            ``num_qvalue_nets`` times (copy 0 keeps its weights, the others re-initialised).

    Keyword Args:
        num_qvalue_nets: critics in the ensemble (default 5).
        top_quantiles_to_drop_per_net: atoms dropped from the pooled target per critic
            (default 2; must be below ``M``).
        alpha_init, min_alpha, max_alpha, fixed_alpha, target_entropy: the temperature, as
            in :class:`~streamrl.objectives.SACLoss`.
        delay_qvalue: bootstrap from target critics (default ``True``).
        action_spec, separate_losses, reduction, deactivate_vmap, skip_done_states,
        use_prioritized_weights, scalar_output_mode: TorchRL's shared options, as in
            :class:`~streamrl.objectives.SACLoss` (:attr:`log_alpha` too).

    >>> from tensordict import TensorDict
    >>> from tensordict.nn import NormalParamExtractor, TensorDictModule
    >>> from streamrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
    >>> actor = ProbabilisticActor(TensorDictModule(
    ...     nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()), ["observation"], ["loc", "scale"]),
    ...     in_keys=["loc", "scale"], distribution_class=TanhNormal)
    >>> critic = ValueOperator(MLP(in_features=5, out_features=8, num_cells=[]),
    ...                        in_keys=["observation", "action"])
    >>> loss = TQCLoss(actor, critic, num_qvalue_nets=2)
    >>> loss = loss.make_value_estimator(gamma=0.99)
    >>> batch = TensorDict({"observation": torch.randn(4, 3), "action": torch.rand(4, 2) * 2 - 1,
    ...     "next": {"observation": torch.randn(4, 3), "reward": torch.randn(4, 1),
    ...              "done": torch.zeros(4, 1, dtype=torch.bool),
    ...              "terminated": torch.zeros(4, 1, dtype=torch.bool)}}, [4])
    >>> sorted(loss(batch).keys())
    ['alpha', 'entropy', 'loss_actor', 'loss_alpha', 'loss_qvalue']
    """

    default_keys = {
        "action": "action",
        "state_action_value": "state_action_value",
        "value": "state_value",
        "priority_weight": opts.PRIORITY_WEIGHT_KEY,
        **TD_KEYS,
    }
    default_value_estimator = ValueEstimators.TD0
    supported_value_estimators = (ValueEstimators.TD0,)

    def __init__(
        self,
        actor_network: nn.Module,
        qvalue_network: nn.Module,
        *,
        num_qvalue_nets: int = 5,
        top_quantiles_to_drop_per_net: int = 2,
        alpha_init: float = 1.0,
        min_alpha: float | None = None,
        max_alpha: float | None = None,
        action_spec: TensorSpec | None = None,
        fixed_alpha: bool = False,
        target_entropy: float | str = "auto",
        delay_qvalue: bool = True,
        separate_losses: bool = False,
        reduction: str | None = None,
        deactivate_vmap: bool = False,
        skip_done_states: bool = False,
        use_prioritized_weights: str | bool = "auto",
        scalar_output_mode: str | None = None,
    ) -> None:
        super().__init__()
        opts.apply_options(
            self, reduction=reduction, use_prioritized_weights=use_prioritized_weights,
            scalar_output_mode=scalar_output_mode, separate_losses=separate_losses,
            deactivate_vmap=deactivate_vmap, skip_done_states=skip_done_states,
        )
        if isinstance(num_qvalue_nets, bool) or not isinstance(num_qvalue_nets, int) \
                or num_qvalue_nets < 1:
            raise ValueError(f"num_qvalue_nets must be a positive int, found {num_qvalue_nets!r}")
        drop = top_quantiles_to_drop_per_net
        if isinstance(drop, bool) or not isinstance(drop, int) or drop < 0:
            raise ValueError(
                f"top_quantiles_to_drop_per_net must be an int >= 0, found {drop!r}"
            )
        self.num_qvalue_nets = num_qvalue_nets
        self.top_quantiles_to_drop_per_net = drop
        target_entropy = shared.resolve_target_entropy(target_entropy, action_spec,
                                                       actor_network)
        self.delay_qvalue = delay_qvalue
        shared.register_actor_critic(self, actor_network, qvalue_network,
                                     num_qvalue_nets=num_qvalue_nets, delay_qvalue=delay_qvalue)
        shared.hold_target_entropy(self, target_entropy)
        self.entropy_coef = shared.EntropyCoefficient(
            alpha_init, fixed=fixed_alpha, min_alpha=min_alpha, max_alpha=max_alpha
        )

    def _atoms(self, td: TensorDictBase, action: Tensor, params: TensorDictBase) -> Tensor:
        """Every critic's atoms at ``(s, action)``: ``[num_qvalue_nets, *B, M]``."""
        atoms = shared.qvalues_at(self, td, action, params)
        batch = tuple(td.batch_size)
        if atoms.ndim != len(batch) + 2 or tuple(atoms.shape[1:-1]) != batch:
            raise ValueError(
                f"TQCLoss: {self._keys['state_action_value']!r} must have shape "
                f"[*batch, n_quantiles] = [{', '.join(map(str, batch))}, M], found "
                f"{tuple(atoms.shape[1:])}"
            )
        if atoms.shape[-1] <= self.top_quantiles_to_drop_per_net:
            raise ValueError(
                f"TQCLoss: the critic predicts {atoms.shape[-1]} quantiles, which is not more "
                f"than top_quantiles_to_drop_per_net={self.top_quantiles_to_drop_per_net}"
            )
        return atoms

    def target_atoms(self, td: TensorDictBase, alpha: Tensor) -> Tensor:
        """The truncated target atoms ``y`` ``[*B, K]``, sorted (no gradient)."""
        next_td, next_action, next_log_prob, params = shared.next_step(self, td)
        with torch.no_grad():
            atoms = self._atoms(next_td, next_action, params)
            n_nets, n_atoms = atoms.shape[0], atoms.shape[-1]
            pooled = atoms.movedim(0, -2).reshape(*td.batch_size, n_nets * n_atoms)
            keep = n_nets * (n_atoms - self.top_quantiles_to_drop_per_net)
            kept = pooled.sort(-1).values[..., :keep]
            next_value = kept - alpha * next_log_prob.reshape(*td.batch_size, 1)
            # the estimator checks that reward, flags and values share one shape: a fresh
            # TensorDict with the leaves expanded to the K atoms (the input stays untouched)
            work = TensorDict({}, td.batch_size, device=td.device)
            for name in ("reward", "done", "terminated"):
                leaf = td.get(self._next_key(name), None)
                if leaf is not None:
                    work.set(self._next_key(name), leaf.expand(*td.batch_size, keep))
            return self.value_estimator.value_estimate(work, next_value=next_value)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the actor, quantile-critic and temperature losses; writes ``td_error``."""
        action = self._get(tensordict, "action")
        batch_dims = tensordict.batch_dims
        alpha = self.entropy_coef.alpha()
        new_action, log_prob = shared.fresh_action(self, tensordict, batch_dims)
        q_new = self._atoms(tensordict, new_action,
                            shared.critic_params(self).detach())
        loss_actor = alpha * log_prob - q_new.mean(-1).mean(0).reshape(log_prob.shape)
        target = self.target_atoms(tensordict, alpha)
        pred = self._atoms(tensordict, action, shared.critic_params(self))
        loss_qvalue = quantile_huber_loss(
            pred, target.unsqueeze(0).expand(pred.shape[0], *target.shape), reduce=False
        ).mean(0)
        td_error = (pred.detach().mean(-1) - target.mean(-1)).abs().max(0).values
        tensordict.set(self._keys["priority"], td_error)
        terms = shared.entropy_terms(self, log_prob, new_action, batch_dims, alpha,
                                     per_sample=True)
        return opts.loss_output(self, tensordict, {
            "loss_actor": loss_actor,
            "loss_qvalue": loss_qvalue,
            "loss_alpha": terms.pop("loss_alpha"),
        }, scalars=terms)
