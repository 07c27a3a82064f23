"""Discrete action distributions: integer or one-hot, optionally masked."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import distributions as D

__all__ = ["Categorical", "MaskedCategorical", "MaskedOneHotCategorical", "OneHotCategorical"]


def _check_one_of(logits, probs, owner: str) -> None:
    if (logits is None) == (probs is None):
        raise ValueError(f"{owner} needs exactly one of logits or probs")


class Categorical(D.Categorical):
    """Integer actions in ``[0, n)``; ``mode`` and ``deterministic_sample`` are the argmax.

    ``mean`` is the expected index (a float), as for any distribution on integers.

    >>> Categorical(logits=torch.tensor([0.0, 3.0, 1.0])).deterministic_sample
    tensor(1)
    """

    def __init__(self, logits: torch.Tensor | None = None, probs: torch.Tensor | None = None):
        _check_one_of(logits, probs, "Categorical")
        super().__init__(logits=logits, probs=probs, validate_args=False)

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

    >>> OneHotCategorical(logits=torch.tensor([0.0, 3.0, 1.0])).mode
    tensor([0., 1., 0.])
    """

    def __init__(self, logits: torch.Tensor | None = None, probs: torch.Tensor | None = None):
        _check_one_of(logits, probs, "OneHotCategorical")
        super().__init__(logits=logits, probs=probs, validate_args=False)

    @property
    def logits(self) -> torch.Tensor:
        return self._categorical.logits

    @property
    def mode(self) -> torch.Tensor:
        index = self._categorical.logits.argmax(-1)
        return F.one_hot(index, self.event_shape[-1]).to(self.probs.dtype)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode


def _masked_logits(logits, probs, mask, owner: str) -> torch.Tensor:
    _check_one_of(logits, probs, owner)
    if logits is None:
        logits = torch.log(probs)
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
    return logits.masked_fill(~mask, float("-inf"))


def _masked_entropy(logits: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    # masked actions have probability 0 and logit -inf: their 0 * -inf term counts as 0
    return -(probs * logits.masked_fill(probs == 0, 0.0)).sum(-1)


class MaskedCategorical(Categorical):
    """:class:`Categorical` where ``mask[..., i] == False`` forbids action ``i``.

    Forbidden actions are never sampled nor chosen by ``mode``; their ``log_prob`` is
    ``-inf``. Every row must allow at least one action.

    >>> dist = MaskedCategorical(logits=torch.zeros(3), mask=torch.tensor([True, False, True]))
    >>> dist.log_prob(torch.tensor(1))
    tensor(-inf)
    """

    def __init__(
        self,
        logits: torch.Tensor | None = None,
        probs: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        self.mask = mask
        super().__init__(logits=_masked_logits(logits, probs, mask, "MaskedCategorical"))

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
    ) -> None:
        self.mask = mask
        super().__init__(logits=_masked_logits(logits, probs, mask, "MaskedOneHotCategorical"))

    def entropy(self) -> torch.Tensor:
        return _masked_entropy(self.logits, self.probs)
