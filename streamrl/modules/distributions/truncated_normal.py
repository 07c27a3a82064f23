"""Gaussian truncated to ``[low, high]``."""

from __future__ import annotations

import torch
from tensordict.nn.distributions import TruncatedNormal as _TDTruncatedNormal
from torch import distributions as D

from streamrl.modules.distributions._squash import prepare_bounds

__all__ = ["TruncatedNormal"]


class TruncatedNormal(D.Independent):
    """``Normal(loc, scale)`` restricted to ``[low, high]``, last ``event_dims`` dims an event.

    Reparameterised (``rsample``). ``mean`` is the truncated mean; ``mode``, ``median`` and
    ``deterministic_sample`` are ``loc`` clipped into ``[low, high]`` (the density's maximum).

    >>> dist = TruncatedNormal(torch.zeros(2, 3), torch.ones(2, 3), low=-1.0, high=1.0)
    >>> bool(((dist.sample() >= -1) & (dist.sample() <= 1)).all())
    True
    """

    def __init__(
        self,
        loc: torch.Tensor,
        scale: torch.Tensor,
        low: float | torch.Tensor = -1.0,
        high: float | torch.Tensor = 1.0,
        event_dims: int = 1,
    ) -> None:
        loc, scale = torch.broadcast_tensors(loc, scale)
        if event_dims < 0 or event_dims > loc.ndim:
            raise ValueError(
                f"event_dims must be in [0, {loc.ndim}] for loc of shape {tuple(loc.shape)}, "
                f"got {event_dims}"
            )
        low, high, _ = prepare_bounds(low, high, loc, "TruncatedNormal")
        self.low, self.high = low, high
        super().__init__(_TDTruncatedNormal(loc, scale, low, high), event_dims)

    @property
    def loc(self) -> torch.Tensor:
        return self.base_dist.loc

    @property
    def scale(self) -> torch.Tensor:
        return self.base_dist.scale

    @property
    def mode(self) -> torch.Tensor:
        return torch.maximum(torch.minimum(self.base_dist.loc, self.high), self.low)

    @property
    def median(self) -> torch.Tensor:
        return self.mode

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        # values a float resolution outside the bounds (e.g. a clipped action) are scored at the
        # bound rather than rejected
        value = torch.maximum(torch.minimum(value, self.high), self.low)
        return super().log_prob(value)
