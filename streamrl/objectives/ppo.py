"""PPO losses (Schulman et al. 2017): clipped objective and adaptive KL penalty."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import Tensor, nn
from torch.distributions import kl_divergence

from streamrl.objectives._actor_critic import _UNSET, OnPolicyLoss, resolve_coeffs
from streamrl.objectives._utils import sum_trailing
from streamrl.objectives.common import _output

__all__ = ["ClipPPOLoss", "KLPENPPOLoss"]


class _PPOBase(OnPolicyLoss):
    def __init__(
        self,
        actor_network: nn.Module,
        critic_network: nn.Module | None,
        *,
        entropy_bonus: bool,
        entropy_coeff: float,
        critic_coeff: float | None,
        loss_critic_type: str,
        normalize_advantage: bool,
        clip_value: float | None,
        log_explained_variance: bool,
    ) -> None:
        super().__init__(
            actor_network, critic_network, entropy_bonus=entropy_bonus,
            entropy_coeff=entropy_coeff, critic_coeff=critic_coeff,
            loss_critic_type=loss_critic_type, normalize_advantage=normalize_advantage,
        )
        self.log_explained_variance = log_explained_variance
        if clip_value is not None and not clip_value > 0:
            raise ValueError(f"clip_value must be > 0 or None, found {clip_value}")
        self.clip_value = clip_value

    def _ratio(self, td: TensorDictBase) -> tuple[torch.distributions.Distribution, Tensor, Tensor]:
        dist, lp = self.log_prob(td)
        log_weight = lp - self.old_log_prob(td)
        return dist, lp, log_weight

    def _common(self, td: TensorDictBase, dist: torch.distributions.Distribution,
                log_weight: Tensor) -> dict[str, Tensor]:
        out = self.entropy_terms(dist, td)
        if self._critic_loss_on:
            out["loss_critic"], explained = self.critic_loss(td, self.clip_value)
            if self.log_explained_variance:
                out["explained_variance"] = explained
        with torch.no_grad():
            weight = log_weight.exp()
            out["ESS"] = weight.sum().pow(2) / weight.pow(2).sum() / weight.numel()
            out["max_ratio"] = weight.max()
            out["mean_ratio"] = weight.mean()
            # k3 estimator of KL(old || new): unbiased and non-negative
            out["kl_approx"] = (weight - 1 - log_weight).mean()
        return out


class ClipPPOLoss(_PPOBase):
    """Clipped PPO: ``loss_objective = -mean min(w * A, clip(w, 1 - eps, 1 + eps) * A)``.

    ``w = exp(log pi(a|s) - action_log_prob)``. Adds ``loss_entropy = -entropy_coeff * H``
    (``entropy_bonus``; ``entropy_coeff=None`` means 0.01) and
    ``loss_critic = critic_coeff * d(V(s), value_target)`` (``critic_coeff=None`` leaves it
    out), with value clipping to ``state_value +- clip_value`` when ``clip_value`` is set
    (the input's ``state_value`` is the old prediction). ``normalize_advantage``
    standardises the advantage over the batch. ``entropy_coef``/``critic_coef`` are the
    older spellings (give one of each pair).

    Diagnostics: ``entropy``, ``clip_fraction``, ``kl_approx``, ``ESS``, ``max_ratio`` and
    ``mean_ratio`` (of ``w``), and ``explained_variance`` of the critic
    (``log_explained_variance``).
    """

    def __init__(
        self,
        actor_network: nn.Module,
        critic_network: nn.Module | None = None,
        *,
        clip_epsilon: float = 0.2,
        entropy_bonus: bool = True,
        entropy_coeff: float | None = None,
        critic_coeff: float | None = _UNSET,
        loss_critic_type: str = "smooth_l1",
        normalize_advantage: bool = False,
        clip_value: float | None = None,
        log_explained_variance: bool = True,
        entropy_coef: float | None = None,
        critic_coef: float | None = None,
    ) -> None:
        entropy_coeff, critic_coeff = resolve_coeffs(
            type(self).__name__, entropy_coeff, entropy_coef, critic_coeff, critic_coef
        )
        super().__init__(
            actor_network, critic_network, entropy_bonus=entropy_bonus,
            entropy_coeff=entropy_coeff, critic_coeff=critic_coeff,
            loss_critic_type=loss_critic_type, normalize_advantage=normalize_advantage,
            clip_value=clip_value, log_explained_variance=log_explained_variance,
        )
        if not 0 < clip_epsilon < 1:
            raise ValueError(f"clip_epsilon must be in (0, 1), found {clip_epsilon}")
        self.clip_epsilon = float(clip_epsilon)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the PPO losses (fills ``advantage``/``value_target`` if missing)."""
        advantage = self.advantage(tensordict)
        dist, _, log_weight = self._ratio(tensordict)
        weight = log_weight.exp()
        clipped = weight.clamp(1.0 - self.clip_epsilon, 1.0 + self.clip_epsilon)
        gain = torch.minimum(weight * advantage, clipped * advantage)
        out = {"loss_objective": -gain.mean()}
        out.update(self._common(tensordict, dist, log_weight))
        with torch.no_grad():
            out["clip_fraction"] = ((weight - 1.0).abs() > self.clip_epsilon).float().mean()
        return _output(**out)


class KLPENPPOLoss(_PPOBase):
    """PPO with an adaptive KL penalty: ``-mean(w * A) + beta * KL(pi_old || pi)``.

    The old distribution is rebuilt from the distribution parameters stored in the input
    (e.g. ``loc``/``scale``, which the actor wrote during collection) and the KL is exact
    when torch knows it for the pair; otherwise (or when the parameters are absent) it is
    estimated from the stored actions, ``mean(action_log_prob - log pi(a|s))``. After each
    call ``beta`` is multiplied by ``increment`` when the KL exceeds ``1.5 * dtarg`` and by
    ``decrement`` when it is below ``dtarg / 1.5``. Coefficients and diagnostics as in
    :class:`ClipPPOLoss`, plus ``kl`` and ``beta`` (the coefficient this call used).
    """

    def __init__(
        self,
        actor_network: nn.Module,
        critic_network: nn.Module | None = None,
        *,
        dtarg: float = 0.01,
        beta: float = 1.0,
        increment: float = 2.0,
        decrement: float = 0.5,
        entropy_bonus: bool = True,
        entropy_coeff: float | None = None,
        critic_coeff: float | None = _UNSET,
        loss_critic_type: str = "smooth_l1",
        normalize_advantage: bool = False,
        clip_value: float | None = None,
        log_explained_variance: bool = True,
        entropy_coef: float | None = None,
        critic_coef: float | None = None,
    ) -> None:
        entropy_coeff, critic_coeff = resolve_coeffs(
            type(self).__name__, entropy_coeff, entropy_coef, critic_coeff, critic_coef
        )
        super().__init__(
            actor_network, critic_network, entropy_bonus=entropy_bonus,
            entropy_coeff=entropy_coeff, critic_coeff=critic_coeff,
            loss_critic_type=loss_critic_type, normalize_advantage=normalize_advantage,
            clip_value=clip_value, log_explained_variance=log_explained_variance,
        )
        if dtarg <= 0 or increment < 1 or not 0 < decrement <= 1:
            raise ValueError(
                "expected dtarg > 0, increment >= 1 and 0 < decrement <= 1, found "
                f"dtarg={dtarg}, increment={increment}, decrement={decrement}"
            )
        self.dtarg = float(dtarg)
        self.increment = float(increment)
        self.decrement = float(decrement)
        self.register_buffer("beta", torch.tensor(float(beta)))

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
        if old is not None:
            try:
                return sum_trailing(kl_divergence(old, dist), td.batch_dims)
            except NotImplementedError:
                pass
        return self.old_log_prob(td) - log_prob

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the KL-penalised PPO losses and adapt ``beta``."""
        advantage = self.advantage(tensordict)
        dist, lp, log_weight = self._ratio(tensordict)
        kl = self.kl(tensordict, dist, lp).mean()
        beta = self.beta.clone()
        loss_objective = -(log_weight.exp() * advantage).mean() + beta * kl
        with torch.no_grad():
            if kl > self.dtarg * 1.5:
                self.beta.mul_(self.increment)
            elif kl < self.dtarg / 1.5:
                self.beta.mul_(self.decrement)
        out = {"loss_objective": loss_objective, "kl": kl.detach(), "beta": beta}
        out.update(self._common(tensordict, dist, log_weight))
        return _output(**out)
