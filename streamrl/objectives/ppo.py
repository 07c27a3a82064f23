"""PPO losses (Schulman et al. 2017): the base objective, the clipped objective and the
adaptive KL penalty, one code path (:class:`PPOLoss`) with a replaceable policy term."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import Tensor, nn
from torch.distributions import kl_divergence

from streamrl.objectives._actor_critic import (
    _UNSET,
    OnPolicyLoss,
    check_coeff,
    resolve_coeffs,
    resolve_networks,
)
from streamrl.objectives.value import _composite as composite

__all__ = ["ClipPPOLoss", "KLPENPPOLoss", "PPOLoss"]


class PPOLoss(OnPolicyLoss):
    """PPO's base objective, without a trust region: ``loss_objective = -mean(w * A)``.

    ``w = exp(log pi(a|s) - action_log_prob)`` is the importance weight of the current
    policy over the behaviour policy and ``A`` the advantage (read from the input, or
    computed with the critic by the value estimator, GAE by default). Nothing keeps the
    policy near the behaviour policy: use :class:`ClipPPOLoss` or :class:`KLPENPPOLoss`
    (which share this class's code and arguments) unless you add your own constraint.

    Args:
        actor_network: probabilistic policy (``get_dist``) writing ``"action"``.
        critic_network: value operator writing ``"state_value"`` (optional).

    Keyword Args:
        entropy_bonus: add ``loss_entropy = -entropy_coeff * H`` (default ``True``).
        samples_mc_entropy: samples of the Monte-Carlo entropy estimate, used when the
            distribution has no closed-form entropy (default 1).
        entropy_coeff: entropy multiplier (``None``: 0.01).
        log_explained_variance: output ``explained_variance`` of the critic (default ``True``).
        critic_coeff: ``loss_critic`` multiplier (default 1.0; ``None`` leaves it out).
        loss_critic_type: ``"l1"``, ``"l2"`` or ``"smooth_l1"`` (default).
        normalize_advantage: standardise the advantage over the batch (default ``False``).
        separate_losses: parameters the critic shares with the actor get no gradient from
            ``loss_critic`` (default ``False``).
        clip_value: clip the new value prediction to ``state_value +- clip_value`` (the
            input's ``state_value`` is the old prediction) in the critic loss (default ``None``).
        entropy_coef, critic_coef: the older spellings of the coefficients (give one of a pair).
        functional: ``False`` holds the networks as plain submodules (``loss.actor_network``,
            ``loss.critic_network``) called as they are, with ``loss.actor_network_params``
            ``None``; ``True`` (default) holds their parameters (``loss.actor_network_params``,
            shared with the modules given) and calls parameter-less copies.
        device: where the coefficient buffers (``entropy_coeff``, ``critic_coeff``,
            ``clip_value``, ``max_importance_ratio``...) live (default: the device of the
            networks' first parameter); the networks themselves are not moved.

    The coefficients are scalar tensor buffers; assigning a number to one
    (``loss.entropy_coeff = 0.003``) updates it in place, e.g. from a schedule.

    Output: ``loss_objective``, ``loss_entropy`` and ``entropy``, ``loss_critic`` and
    ``explained_variance``, and the diagnostics ``kl_approx``, ``ESS``, ``max_ratio`` and
    ``mean_ratio`` (of ``w``).

    >>> from tensordict import TensorDict
    >>> from tensordict.nn import TensorDictModule
    >>> from streamrl.modules import NormalParamExtractor, ProbabilisticActor, TanhNormal
    >>> net = TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()),
    ...                        in_keys=["observation"], out_keys=["loc", "scale"])
    >>> actor = ProbabilisticActor(net, in_keys=["loc", "scale"], distribution_class=TanhNormal)
    >>> critic = TensorDictModule(nn.Linear(3, 1), ["observation"], ["state_value"])
    >>> data = TensorDict({"observation": torch.randn(4, 3), "action": torch.rand(4, 2) - 0.5,
    ...                    "action_log_prob": torch.zeros(4), "advantage": torch.ones(4, 1),
    ...                    "value_target": torch.zeros(4, 1)}, [4])
    >>> out = PPOLoss(actor, critic)(data)
    >>> sorted(k for k in out.keys() if k.startswith("loss"))
    ['loss_critic', 'loss_entropy', 'loss_objective']
    """

    _schedulable_buffers = frozenset(
        {"entropy_coeff", "critic_coeff", "clip_value", "max_importance_ratio"})

    def __init__(
        self,
        actor_network: nn.Module | None = None,
        critic_network: nn.Module | None = None,
        *,
        entropy_bonus: bool = True,
        samples_mc_entropy: int = 1,
        entropy_coeff: float | None = None,
        log_explained_variance: bool = True,
        critic_coeff: float | None = _UNSET,
        loss_critic_type: str = "smooth_l1",
        normalize_advantage: bool = False,
        normalize_advantage_exclude_dims: tuple[int, ...] = (),
        advantage_norm: nn.Module | None = None,
        gamma: float | None = None,
        separate_losses: bool = False,
        advantage_key: str | None = None,
        value_target_key: str | None = None,
        value_key: str | None = None,
        functional: bool = True,
        actor: nn.Module | None = None,
        critic: nn.Module | None = None,
        reduction: str | None = None,
        clip_value: float | None = None,
        delay_actor: bool = False,
        max_importance_ratio: float | None = None,
        device: torch.device | str | None = None,
        entropy_coef: float | None = None,
        critic_coef: float | None = None,
    ) -> None:
        owner = type(self).__name__
        actor_network, critic_network = resolve_networks(
            owner, actor_network, critic_network, actor, critic, gamma=gamma,
            functional=functional, advantage_key=advantage_key,
            value_target_key=value_target_key, value_key=value_key,
        )
        if delay_actor is not False:
            raise ValueError(
                f"{owner}: delay_actor=True (a proximal policy held as a target actor) is not "
                "supported; leave delay_actor=False"
            )
        max_importance_ratio = check_coeff(owner, "max_importance_ratio", max_importance_ratio)
        clip_value = check_coeff(owner, "clip_value", clip_value)
        entropy_coeff, critic_coeff = resolve_coeffs(
            owner, entropy_coeff, entropy_coef, critic_coeff, critic_coef
        )
        super().__init__(
            actor_network, critic_network, entropy_bonus=entropy_bonus,
            entropy_coeff=entropy_coeff, critic_coeff=critic_coeff,
            loss_critic_type=loss_critic_type, normalize_advantage=normalize_advantage,
            samples_mc_entropy=samples_mc_entropy, separate_losses=separate_losses,
            reduction=reduction, normalize_advantage_exclude_dims=normalize_advantage_exclude_dims,
            advantage_norm=advantage_norm, functional=functional, device=device,
        )
        self.register_coeff_buffer("max_importance_ratio", max_importance_ratio,
                                   device=self._coeff_device)
        self.log_explained_variance = log_explained_variance
        self.register_coeff_buffer("clip_value", clip_value, device=self._coeff_device)

    #: the diagnostics :meth:`objective` adds beside ``loss_objective``
    _objective_keys: tuple[str, ...] = ()

    def _output_keys(self) -> list[str]:
        keys = ["loss_objective", *self._objective_keys, *self._entropy_and_critic_keys()]
        if self._critic_loss_on and self.log_explained_variance:
            keys.append("explained_variance")
        return [*keys, "ESS", "max_ratio", "mean_ratio", "kl_approx"]

    def objective(self, tensordict: TensorDictBase, advantage: Tensor,
                  dist: torch.distributions.Distribution, log_prob: Tensor,
                  log_weight: Tensor) -> dict[str, Tensor]:
        """The policy term, per sample: ``{"loss_objective": -w * A}`` here; the PPO variants
        replace it with their constrained objective (and its diagnostics)."""
        return {"loss_objective": -(log_weight.exp() * advantage)}

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the losses (fills ``advantage``/``value_target`` if missing)."""
        advantage = self.advantage(tensordict)
        dist, log_prob = self.log_prob(tensordict)
        old_log_prob = self.old_log_prob(tensordict)
        if self.max_importance_ratio is not None:
            # cap w at max_importance_ratio by lifting the (gradient-free) behaviour
            # log-prob: capped samples keep a rescaled policy gradient
            old_log_prob = torch.maximum(
                old_log_prob, log_prob.detach() - self.max_importance_ratio.log())
        log_weight = log_prob - old_log_prob
        out = self.objective(tensordict, advantage, dist, log_prob, log_weight)
        out.update(self.entropy_terms(dist, tensordict))
        if self._critic_loss_on:
            out["loss_critic"], explained = self.critic_loss(tensordict, self.clip_value,
                                                             per_sample=True)
            if self.log_explained_variance:
                out["explained_variance"] = explained
        with torch.no_grad():
            weight = log_weight.exp()
            out["ESS"] = weight.sum().pow(2) / weight.pow(2).sum() / weight.numel()
            out["max_ratio"] = weight.max()
            out["mean_ratio"] = weight.mean()
            # k3 estimator of KL(old || new): unbiased and non-negative
            out["kl_approx"] = (weight - 1 - log_weight).mean()
        return self.output(tensordict, out)


class ClipPPOLoss(PPOLoss):
    """Clipped PPO: ``loss_objective = -mean min(w * A, clip(w, 1 - eps, 1 + eps) * A)``.

    :class:`PPOLoss` with the clipped policy term; the other arguments and outputs are
    :class:`PPOLoss`'s, plus the ``clip_fraction`` diagnostic (share of ``|w - 1| > eps``).
    ``clip_value=True`` clips the value prediction with ``clip_epsilon`` (``False`` as ``None``).

    >>> from tensordict.nn import NormalParamExtractor, TensorDictModule
    >>> from streamrl.modules import ProbabilisticActor, TanhNormal
    >>> net = TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()),
    ...                        in_keys=["observation"], out_keys=["loc", "scale"])
    >>> actor = ProbabilisticActor(net, in_keys=["loc", "scale"], distribution_class=TanhNormal)
    >>> ClipPPOLoss(actor, clip_epsilon=0.1, clip_value=True).clip_value
    tensor(0.1000)
    """

    _schedulable_buffers = frozenset({"clip_epsilon"})
    _objective_keys = ("clip_fraction",)

    def __init__(
        self,
        actor_network: nn.Module | None = None,
        critic_network: nn.Module | None = None,
        *,
        clip_epsilon: float = 0.2,
        entropy_bonus: bool = True,
        samples_mc_entropy: int = 1,
        entropy_coeff: float | None = None,
        critic_coeff: float | None = _UNSET,
        loss_critic_type: str = "smooth_l1",
        normalize_advantage: bool = False,
        normalize_advantage_exclude_dims: tuple[int, ...] = (),
        advantage_norm: nn.Module | None = None,
        gamma: float | None = None,
        separate_losses: bool = False,
        reduction: str | None = None,
        clip_value: bool | float | None = None,
        delay_actor: bool = False,
        max_importance_ratio: float | None = None,
        device: torch.device | str | None = None,
        log_explained_variance: bool = True,
        entropy_coef: float | None = None,
        critic_coef: float | None = None,
        functional: bool = True,
        **deprecated: Any,
    ) -> None:
        if isinstance(clip_epsilon, bool) or not 0 < clip_epsilon < 1:
            raise ValueError(f"clip_epsilon must be in (0, 1), found {clip_epsilon!r}")
        if isinstance(clip_value, bool):
            clip_value = clip_epsilon if clip_value else None
        super().__init__(
            actor_network, critic_network, entropy_bonus=entropy_bonus,
            samples_mc_entropy=samples_mc_entropy, entropy_coeff=entropy_coeff,
            log_explained_variance=log_explained_variance, critic_coeff=critic_coeff,
            loss_critic_type=loss_critic_type, normalize_advantage=normalize_advantage,
            normalize_advantage_exclude_dims=normalize_advantage_exclude_dims,
            advantage_norm=advantage_norm, gamma=gamma, separate_losses=separate_losses,
            reduction=reduction, clip_value=clip_value, delay_actor=delay_actor,
            max_importance_ratio=max_importance_ratio, device=device,
            entropy_coef=entropy_coef, critic_coef=critic_coef, functional=functional,
            **deprecated,
        )
        self.register_coeff_buffer("clip_epsilon", clip_epsilon, device=self._coeff_device)

    def objective(self, tensordict: TensorDictBase, advantage: Tensor,
                  dist: torch.distributions.Distribution, log_prob: Tensor,
                  log_weight: Tensor) -> dict[str, Tensor]:
        """The clipped policy term and ``clip_fraction``."""
        weight = log_weight.exp()
        clipped = weight.clamp(1.0 - self.clip_epsilon, 1.0 + self.clip_epsilon)
        gain = torch.minimum(weight * advantage, clipped * advantage)
        with torch.no_grad():
            fraction = ((weight - 1.0).abs() > self.clip_epsilon).float().mean()
        return {"loss_objective": -gain, "clip_fraction": fraction}


class KLPENPPOLoss(PPOLoss):
    """PPO with an adaptive KL penalty: ``-mean(w * A) + beta * KL(pi_old || pi)``.

    The old distribution is rebuilt from the distribution parameters stored in the input
    (e.g. ``loc``/``scale``, which the actor wrote during collection) and the KL is exact
    when torch knows it for the pair; otherwise (or when the parameters are absent) it is
    estimated from the stored actions, ``mean(action_log_prob - log pi(a|s))``. After each
    call ``beta`` is multiplied by ``increment`` when the KL exceeds ``1.5 * dtarg`` and by
    ``decrement`` when it is below ``dtarg / 1.5``. The other arguments and outputs are
    :class:`PPOLoss`'s, plus ``kl`` and ``beta`` (the coefficient this call used).

    >>> from tensordict.nn import NormalParamExtractor, TensorDictModule
    >>> from streamrl.modules import ProbabilisticActor, TanhNormal
    >>> net = TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()),
    ...                        in_keys=["observation"], out_keys=["loc", "scale"])
    >>> actor = ProbabilisticActor(net, in_keys=["loc", "scale"], distribution_class=TanhNormal)
    >>> KLPENPPOLoss(actor, beta=0.5).beta
    tensor(0.5000)
    """

    _schedulable_buffers = frozenset({"beta"})
    _objective_keys = ("kl", "beta")

    @property
    def in_keys(self) -> list[NestedKey]:
        """:class:`PPOLoss`'s inputs and the behaviour policy's distribution parameters
        (the inputs of the actor's last, distribution-building module)."""
        keys = super().in_keys
        template = self.network_template("actor_network")
        modules = getattr(template, "module", None)
        head = modules[-1] if isinstance(modules, nn.ModuleList) and len(modules) else template
        if head is not template:
            keys += [k for k in getattr(head, "in_keys", []) if k not in keys]
        return keys

    def __init__(
        self,
        actor_network: nn.Module | None = None,
        critic_network: nn.Module | None = None,
        *,
        dtarg: float = 0.01,
        beta: float = 1.0,
        increment: float = 2.0,
        decrement: float = 0.5,
        samples_mc_kl: int = 1,
        entropy_bonus: bool = True,
        samples_mc_entropy: int = 1,
        entropy_coeff: float | None = None,
        critic_coeff: float | None = _UNSET,
        loss_critic_type: str = "smooth_l1",
        normalize_advantage: bool = False,
        normalize_advantage_exclude_dims: tuple[int, ...] = (),
        advantage_norm: nn.Module | None = None,
        gamma: float | None = None,
        separate_losses: bool = False,
        reduction: str | None = None,
        clip_value: float | None = None,
        delay_actor: bool = False,
        max_importance_ratio: float | None = None,
        device: torch.device | str | None = None,
        log_explained_variance: bool = True,
        entropy_coef: float | None = None,
        critic_coef: float | None = None,
        functional: bool = True,
        **deprecated: Any,
    ) -> None:
        if dtarg <= 0 or increment < 1 or not 0 < decrement <= 1:
            raise ValueError(
                "expected dtarg > 0, increment >= 1 and 0 < decrement <= 1, found "
                f"dtarg={dtarg}, increment={increment}, decrement={decrement}"
            )
        if isinstance(samples_mc_kl, bool) or not isinstance(samples_mc_kl, int) \
                or samples_mc_kl < 1:
            raise ValueError(f"samples_mc_kl must be a positive int, found {samples_mc_kl!r}")
        super().__init__(
            actor_network, critic_network, entropy_bonus=entropy_bonus,
            samples_mc_entropy=samples_mc_entropy, entropy_coeff=entropy_coeff,
            log_explained_variance=log_explained_variance, critic_coeff=critic_coeff,
            loss_critic_type=loss_critic_type, normalize_advantage=normalize_advantage,
            normalize_advantage_exclude_dims=normalize_advantage_exclude_dims,
            advantage_norm=advantage_norm, gamma=gamma, separate_losses=separate_losses,
            reduction=reduction, clip_value=clip_value, delay_actor=delay_actor,
            max_importance_ratio=max_importance_ratio, device=device,
            entropy_coef=entropy_coef, critic_coef=critic_coef, functional=functional,
            **deprecated,
        )
        self.samples_mc_kl = samples_mc_kl
        self.dtarg = float(dtarg)
        self.increment = float(increment)
        self.decrement = float(decrement)
        self.register_coeff_buffer("beta", beta, device=self._coeff_device)
        self._beta_init = float(beta)

    def reset(self) -> None:
        """Restore ``beta`` to the value the loss was built with (in place)."""
        with torch.no_grad():
            self.beta.fill_(self._beta_init)

    def _old_dist(self, td: TensorDictBase) -> torch.distributions.Distribution | None:
        template = self.network_template("actor_network")
        head = template
        modules = getattr(template, "module", None)
        if isinstance(modules, nn.ModuleList) and len(modules):
            head = modules[-1]
        in_keys = getattr(head, "in_keys", None)
        if not hasattr(head, "get_dist") or not in_keys:
            return None
        if any(td.get(k, None) is None for k in in_keys):
            return None
        if any(True for _ in head.parameters(recurse=True)):
            return None  # the head has weights of its own: the stored entries are not enough
        return head.get_dist(td)

    def kl(self, td: TensorDictBase, dist: torch.distributions.Distribution,
           log_prob: Tensor) -> Tensor:
        """Per-sample ``KL(pi_old || pi)`` (exact when possible, else a sample estimate)."""
        old = self._old_dist(td)
        dims = len(self.sample_shape(td))
        if old is not None:
            try:
                # (a composite distribution's KL is per head: their sum)
                return composite.joint(kl_divergence(old, dist), dims)
            except NotImplementedError:
                # no closed form: Monte-Carlo over samples_mc_kl draws from the old policy
                draws = old.sample((self.samples_mc_kl,))
                gap = composite.joint(old.log_prob(draws), dims + 1) - composite.joint(
                    dist.log_prob(draws), dims + 1)
                return gap.mean(0)
        return self.old_log_prob(td) - log_prob

    def objective(self, tensordict: TensorDictBase, advantage: Tensor,
                  dist: torch.distributions.Distribution, log_prob: Tensor,
                  log_weight: Tensor) -> dict[str, Tensor]:
        """The KL-penalised policy term, ``kl`` and ``beta``; adapts ``beta`` afterwards."""
        kl_each = self.kl(tensordict, dist, log_prob)
        kl = kl_each.mean()
        beta = self.beta.clone()
        loss_objective = -(log_weight.exp() * advantage) + beta * kl_each
        with torch.no_grad():
            if kl > self.dtarg * 1.5:
                self.beta.mul_(self.increment)
            elif kl < self.dtarg / 1.5:
                self.beta.mul_(self.decrement)
        return {"loss_objective": loss_objective, "kl": kl.detach(), "beta": beta}
