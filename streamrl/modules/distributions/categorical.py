"""Discrete action distributions: integer or one-hot, optionally masked."""

from __future__ import annotations

from enum import Enum

import torch
from torch import distributions as D

from streamrl._utils.one_hot import one_hot

__all__ = [
    "Categorical",
    "MaskedCategorical",
    "MaskedOneHotCategorical",
    "OneHotCategorical",
    "ReparamGradientStrategy",
]


class ReparamGradientStrategy(Enum):
    """How :meth:`OneHotCategorical.rsample` passes gradients through a discrete sample.

    ``PassThrough``: the one-hot sample plus ``probs - probs.detach()`` (straight-through:
    the gradient of the probabilities). ``RelaxedOneHot``: a Gumbel-softmax sample
    (``torch.distributions.RelaxedOneHotCategorical``, temperature 1) rounded to one-hot in
    the forward pass, its gradient in the backward pass.

    >>> ReparamGradientStrategy.PassThrough.value
    1
    """

    PassThrough = 1
    RelaxedOneHot = 2


def _check_one_of(logits, probs, owner: str) -> None:
    if (logits is None) == (probs is None):
        raise ValueError(f"{owner} needs exactly one of logits or probs")


def _init_categorical(dist: D.Categorical, logits: torch.Tensor | None,
                      probs: torch.Tensor | None) -> None:
    """``torch.distributions.Categorical.__init__`` without argument validation, with the
    logits normalised by one ``log_softmax`` (torch subtracts their ``logsumexp``: two ops,
    a third of the cost again forward and backward on a [256, 2] batch; equal to 1 ulp)."""
    param = logits if probs is None else probs
    if param.dim() < 1:
        name = "logits" if probs is None else "probs"
        raise ValueError(f"{type(dist).__name__}: {name} must be at least one-dimensional, "
                         f"found shape {tuple(param.shape)}")
    if probs is None:
        dist.logits = torch.log_softmax(logits, -1)
        dist._param = dist.logits
    else:
        dist.probs = probs / probs.sum(-1, keepdim=True)
        dist._param = dist.probs
    dist._num_events = dist._param.size()[-1]
    batch_shape = dist._param.size()[:-1] if dist._param.ndimension() > 1 else torch.Size()
    D.Distribution.__init__(dist, batch_shape, validate_args=False)


class Categorical(D.Categorical):
    """Integer actions in ``[0, n)``; ``mode`` and ``deterministic_sample`` are the argmax.

    ``mean`` is the expected index (a float), as for any distribution on integers.

    >>> Categorical(logits=torch.tensor([0.0, 3.0, 1.0])).deterministic_sample
    tensor(1)
    """

    def __init__(self, logits: torch.Tensor | None = None, probs: torch.Tensor | None = None):
        _check_one_of(logits, probs, "Categorical")
        _init_categorical(self, logits, probs)

    @property
    def mode(self) -> torch.Tensor:
        return self.logits.argmax(-1)

    @property
    def mean(self) -> torch.Tensor:
        values = torch.arange(self.probs.shape[-1], device=self.probs.device, dtype=self.probs.dtype)
        return (self.probs * values).sum(-1)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode


class OneHotCategorical(D.OneHotCategorical):
    """One-hot actions; ``mode`` and ``deterministic_sample`` are the one-hot argmax.

    ``mean`` is the vector of probabilities.

    ``rsample`` returns one-hot samples that carry gradients, per ``grad_method`` (a
    :class:`ReparamGradientStrategy`, default ``PassThrough``).

    >>> OneHotCategorical(logits=torch.tensor([0.0, 3.0, 1.0])).mode
    tensor([0., 1., 0.])
    >>> logits = torch.zeros(3, requires_grad=True)
    >>> OneHotCategorical(logits=logits).rsample().sum().backward()
    >>> logits.grad is not None
    True
    """

    has_rsample = True

    def __init__(
        self,
        logits: torch.Tensor | None = None,
        probs: torch.Tensor | None = None,
        grad_method: ReparamGradientStrategy = ReparamGradientStrategy.PassThrough,
    ):
        _check_one_of(logits, probs, "OneHotCategorical")
        if not isinstance(grad_method, ReparamGradientStrategy):
            raise TypeError(
                f"grad_method must be a ReparamGradientStrategy, got {grad_method!r}"
            )
        self.grad_method = grad_method
        # D.OneHotCategorical.__init__ with an unvalidated inner Categorical (torch's checks
        # the logits, then every sample given to log_prob, with a host sync each time)
        self._categorical = D.Categorical.__new__(D.Categorical)
        _init_categorical(self._categorical, logits, probs)
        D.Distribution.__init__(self, self._categorical.batch_shape,
                                self._categorical.param_shape[-1:], validate_args=False)

    def rsample(self, sample_shape: torch.Size | tuple = ()) -> torch.Tensor:
        """A one-hot sample whose gradient flows to the logits (see ``grad_method``)."""
        if self.grad_method is ReparamGradientStrategy.PassThrough:
            hard = self.sample(torch.Size(sample_shape))
            probs = self.probs.expand_as(hard)
            return hard + (probs - probs.detach())  # exactly one-hot values
        soft = D.RelaxedOneHotCategorical(torch.tensor(1.0, device=self.logits.device),
                                          logits=self.logits).rsample(torch.Size(sample_shape))
        hard = one_hot(soft.argmax(-1), soft.shape[-1], soft.dtype)
        return hard + (soft - soft.detach())

    @property
    def logits(self) -> torch.Tensor:
        return self._categorical.logits

    @property
    def mode(self) -> torch.Tensor:
        index = self._categorical.logits.argmax(-1)
        return one_hot(index, self.event_shape[-1], self.probs.dtype)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode


def _indices_to_mask(indices, mask, logits, owner: str):
    if indices is None:
        return mask
    if mask is not None:
        raise ValueError(f"{owner} takes mask or indices, not both")
    if indices.dtype in (torch.bool, torch.float16, torch.float32, torch.float64):
        raise TypeError(f"{owner} indices must be an integer tensor, got dtype {indices.dtype}")
    n = logits.shape[-1]
    if indices.numel() and (indices.min() < 0 or indices.max() >= n):
        raise ValueError(f"{owner} indices must lie in [0, {n}), got {indices.tolist()}")
    lead = torch.broadcast_shapes(logits.shape[:-1], indices.shape[:-1])
    dense = torch.zeros(*lead, n, dtype=torch.bool, device=logits.device)
    return dense.scatter(-1, indices.expand(*lead, indices.shape[-1]), True)


def _masked_logits(
    logits, probs, mask, owner: str, indices=None, neg_inf: float = float("-inf")
) -> torch.Tensor:
    _check_one_of(logits, probs, owner)
    if logits is None:
        logits = torch.log(probs)
    mask = _indices_to_mask(indices, mask, logits, owner)
    if mask is None:
        return logits
    if mask.dtype is not torch.bool:
        raise TypeError(f"{owner} mask must be a bool tensor, got dtype {mask.dtype}")
    if mask.shape[-1] != logits.shape[-1]:
        raise ValueError(
            f"{owner} mask must have the logits' last dim: mask shape {tuple(mask.shape)}, "
            f"logits shape {tuple(logits.shape)}"
        )
    try:
        mask = mask.expand_as(logits)
    except RuntimeError:
        raise ValueError(
            f"{owner} mask of shape {tuple(mask.shape)} does not broadcast to logits of shape "
            f"{tuple(logits.shape)}"
        ) from None
    inspectable = mask.device.type == "cpu" and not torch._C._functorch.is_batchedtensor(mask)
    if inspectable and not mask.any(-1).all():
        raise ValueError(f"{owner} got a row whose action mask allows no action")
    return logits.masked_fill(~mask, neg_inf)


def _masked_entropy(logits: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    # masked actions have probability 0 and logit -inf: their 0 * -inf term counts as 0
    return -(probs * logits.masked_fill(probs == 0, 0.0)).sum(-1)


class MaskedCategorical(Categorical):
    """:class:`Categorical` where ``mask[..., i] == False`` forbids action ``i``.

    Forbidden actions are never sampled nor chosen by ``mode``; their ``log_prob`` is
    ``-inf``. Every row must allow at least one action.

    Args:
        logits / probs: the unmasked distribution (exactly one of them).
        mask: bool tensor, ``False`` where an action is forbidden.
        indices: (keyword) the allowed action indices instead of a mask, ``[*B, k]``.
        neg_inf: (keyword) the logit given to forbidden actions (default ``-inf``; a large
            negative number keeps gradients finite).

    >>> dist = MaskedCategorical(logits=torch.zeros(3), mask=torch.tensor([True, False, True]))
    >>> dist.log_prob(torch.tensor(1))
    tensor(-inf)
    >>> MaskedCategorical(logits=torch.zeros(4), indices=torch.tensor([0, 2])).probs
    tensor([0.5000, 0.0000, 0.5000, 0.0000])
    """

    def __init__(
        self,
        logits: torch.Tensor | None = None,
        probs: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        *,
        indices: torch.Tensor | None = None,
        neg_inf: float = float("-inf"),
    ) -> None:
        masked = _masked_logits(logits, probs, mask, "MaskedCategorical", indices, neg_inf)
        self.mask = masked > neg_inf if indices is not None else mask
        super().__init__(logits=masked)

    def entropy(self) -> torch.Tensor:
        return _masked_entropy(self.logits, self.probs)


class MaskedOneHotCategorical(OneHotCategorical):
    """:class:`OneHotCategorical` with an action mask (see :class:`MaskedCategorical`).

    >>> dist = MaskedOneHotCategorical(logits=torch.zeros(3), mask=torch.tensor([False, True, False]))
    >>> dist.sample()
    tensor([0., 1., 0.])
    """

    def __init__(
        self,
        logits: torch.Tensor | None = None,
        probs: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        *,
        indices: torch.Tensor | None = None,
        neg_inf: float = float("-inf"),
    ) -> None:
        masked = _masked_logits(logits, probs, mask, "MaskedOneHotCategorical", indices, neg_inf)
        self.mask = masked > neg_inf if indices is not None else mask
        super().__init__(logits=masked)

    def entropy(self) -> torch.Tensor:
        return _masked_entropy(self.logits, self.probs)
