"""Whether a distribution has a closed-form entropy, or a pair a closed-form KL
(TorchRL's ``torchrl.modules.distributions.utils`` helpers)."""

from __future__ import annotations

import torch.distributions as D
from torch.distributions.kl import _KL_REGISTRY

__all__ = ["has_analytic_entropy", "has_analytic_kl"]


def _check(dist: object, name: str, owner: str) -> None:
    if not isinstance(dist, D.Distribution):
        raise TypeError(
            f"{owner}: {name} must be a torch.distributions.Distribution, found "
            f"{type(dist).__name__}"
        )


def has_analytic_entropy(dist: D.Distribution) -> bool:
    """Whether ``dist.entropy()`` has a closed form, decided from the class without calling it.

    ``Independent`` is decided by its base distribution; a class that overrides
    ``entropy`` has one unless it sets ``closed_form_entropy = False`` (as
    :class:`~streamrl.modules.TanhNormal`, whose ``entropy`` raises); tensordict's
    ``CompositeDistribution`` counts as not having one.

    >>> import torch
    >>> has_analytic_entropy(D.Normal(torch.zeros(2), torch.ones(2)))
    True
    >>> from streamrl.modules import TanhNormal
    >>> has_analytic_entropy(TanhNormal(torch.zeros(2), torch.ones(2)))
    False
    """
    _check(dist, "dist", "has_analytic_entropy")
    while isinstance(dist, D.Independent):
        dist = dist.base_dist
    cls = type(dist)
    if cls.__name__ == "CompositeDistribution" or not getattr(cls, "closed_form_entropy", True):
        return False
    return cls.entropy is not D.Distribution.entropy


def has_analytic_kl(p: D.Distribution, q: D.Distribution) -> bool:
    """Whether ``kl_divergence(p, q)`` has a registered closed form, without calling it.

    ``Independent`` pairs (same reinterpreted dims) and ``TransformedDistribution`` pairs
    (equal transforms) are decided by their bases, as torch's own rules for them do; other
    pairs by torch's KL registry (subclasses inherit a registered pair).

    >>> import torch
    >>> loc, scale = torch.zeros(2), torch.ones(2)
    >>> has_analytic_kl(D.Normal(loc, scale), D.Normal(loc, scale))
    True
    >>> has_analytic_kl(D.Normal(loc, scale), D.Categorical(logits=loc))
    False
    """
    _check(p, "p", "has_analytic_kl")
    _check(q, "q", "has_analytic_kl")
    if isinstance(p, D.Independent) or isinstance(q, D.Independent):
        if not (isinstance(p, D.Independent) and isinstance(q, D.Independent)) or \
                p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
            return False
        return has_analytic_kl(p.base_dist, q.base_dist)
    if isinstance(p, D.TransformedDistribution) or isinstance(q, D.TransformedDistribution):
        if not (isinstance(p, D.TransformedDistribution)
                and isinstance(q, D.TransformedDistribution)) or p.transforms != q.transforms:
            return False
        return has_analytic_kl(p.base_dist, q.base_dist)
    return any(issubclass(type(p), left) and issubclass(type(q), right)
               for left, right in _KL_REGISTRY)
