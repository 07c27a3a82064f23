"""Diagonal Gaussian over the last ``event_dims`` dims."""

from __future__ import annotations

import torch
from torch import distributions as D

__all__ = ["IndependentNormal"]


class IndependentNormal(D.Independent):
    """``Normal(loc, scale)`` whose last ``event_dims`` dims form one event.

    ``mode``, ``mean``, ``median`` and ``deterministic_sample`` are all ``loc``.

    >>> dist = IndependentNormal(torch.zeros(4, 3), torch.ones(4, 3))
    >>> dist.log_prob(torch.zeros(4, 3)).shape
    torch.Size([4])
    """

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, event_dims: int = 1) -> None:
        loc, scale = torch.broadcast_tensors(loc, scale)
        if event_dims < 0 or event_dims > loc.ndim:
            raise ValueError(
                f"event_dims must be in [0, {loc.ndim}] for loc of shape {tuple(loc.shape)}, "
                f"got {event_dims}"
            )
        super().__init__(D.Normal(loc, scale, validate_args=False), event_dims)

    @property
    def loc(self) -> torch.Tensor:
        return self.base_dist.loc

    @property
    def scale(self) -> torch.Tensor:
        return self.base_dist.scale

    @property
    def median(self) -> torch.Tensor:
        return self.base_dist.loc

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.base_dist.loc
