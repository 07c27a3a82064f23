"""Composite action distributions (one distribution per action head, ``tensordict.nn``'s
:class:`~tensordict.nn.CompositeDistribution`) in the losses: their samples are TensorDicts,
and their log-probabilities and entropies are TensorDicts of per-head entries (or one
aggregated tensor, depending on ``tensordict.nn.set_composite_lp_aggregate``). The losses
need the joint value: the sum over heads, summed to the batch shape.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.nn import CompositeDistribution
from torch import Tensor


def _sum_trailing(x: Tensor, batch_dims: int) -> Tensor:
    if x.ndim < batch_dims:
        raise ValueError(f"expected at least {batch_dims} dims, found shape {tuple(x.shape)}")
    return x if x.ndim == batch_dims else x.sum(dim=tuple(range(batch_dims, x.ndim)))


def is_composite(dist: torch.distributions.Distribution) -> bool:
    """Whether ``dist`` is a composite (multi-head) distribution."""
    return isinstance(dist, CompositeDistribution)


def joint(value: Tensor | TensorDictBase, batch_dims: int) -> Tensor:
    """The sum over heads (the leaves of a TensorDict of per-head values) of ``value``,
    each summed to its first ``batch_dims`` dims; a tensor is summed to them.

    >>> from tensordict import TensorDict
    >>> lp = TensorDict({"a_log_prob": torch.ones(3), "b": {"log_prob": torch.ones(3, 2)}}, [3])
    >>> joint(lp, 1)
    tensor([3., 3., 3.])
    """
    if isinstance(value, TensorDictBase):
        leaves = [_sum_trailing(v, batch_dims) for v in value.values(True, True)]
        if not leaves:
            raise ValueError("a composite log-probability / entropy with no entries")
        return torch.stack(leaves, 0).sum(0)
    return _sum_trailing(value, batch_dims)


def can_rsample(dist: torch.distributions.Distribution) -> bool:
    """Whether ``dist`` gives reparameterised samples: a composite distribution can when
    each of its heads can (it does not set ``has_rsample`` itself)."""
    if is_composite(dist):
        return all(d.has_rsample for d in dist.dists.values())
    return bool(dist.has_rsample)


def log_prob_of(dist: torch.distributions.Distribution, action: Tensor | TensorDictBase,
                batch_dims: int) -> Tensor:
    """``log pi(action)`` summed to the batch shape (over heads for a composite
    distribution, whose ``action`` is a TensorDict of per-head actions)."""
    if is_composite(dist):
        if not isinstance(action, TensorDictBase):
            raise TypeError(
                f"a composite action distribution needs a TensorDict of per-head actions, "
                f"found {type(action).__name__}"
            )
        return joint(dist.log_prob(action), batch_dims)
    return _sum_trailing(dist.log_prob(action), batch_dims)
