"""Point-mass distributions for deterministic policies (DDPG/TD3 actors)."""

from __future__ import annotations

import torch
from torch import distributions as D
from torch.distributions import constraints

from streamrl.modules.distributions._squash import prepare_bounds, safe_tanh

__all__ = ["Delta", "TanhDelta"]


class Delta(D.Distribution):
    """All mass on ``param``; the last ``event_dims`` dims form one event.

    ``rsample`` returns ``param`` itself (gradients flow to it); ``log_prob`` is 0 where the
    value equals ``param`` (within ``atol``/``rtol``) and ``-inf`` elsewhere.

    >>> d = Delta(torch.tensor([[0.5, -0.5]]))
    >>> d.rsample().tolist(), d.log_prob(torch.tensor([[0.5, -0.5]])).tolist()
    ([[0.5, -0.5]], [0.0])
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(
        self, param: torch.Tensor, atol: float = 1e-6, rtol: float = 1e-6, event_dims: int = 1
    ) -> None:
        if event_dims < 0 or event_dims > param.ndim:
            raise ValueError(
                f"event_dims must be in [0, {param.ndim}] for param of shape "
                f"{tuple(param.shape)}, got {event_dims}"
            )
        self.param = param
        self.atol, self.rtol = atol, rtol
        self.event_dims = event_dims
        split = param.ndim - event_dims
        super().__init__(param.shape[:split], param.shape[split:], validate_args=False)

    @property
    def support(self):
        return constraints.independent(constraints.real, self.event_dims)

    def rsample(self, sample_shape: torch.Size | tuple = ()) -> torch.Tensor:
        return self.param.expand(*sample_shape, *self.param.shape)

    def sample(self, sample_shape: torch.Size | tuple = ()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        close = torch.isclose(value, self.param.expand_as(value), atol=self.atol, rtol=self.rtol)
        if self.event_dims:
            close = close.flatten(-self.event_dims).all(-1)
        zeros = torch.zeros(close.shape, dtype=self.param.dtype, device=self.param.device)
        return zeros.masked_fill(~close, float("-inf"))

    @property
    def mode(self) -> torch.Tensor:
        return self.param

    @property
    def mean(self) -> torch.Tensor:
        return self.param

    @property
    def median(self) -> torch.Tensor:
        return self.param

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.param

    def entropy(self) -> torch.Tensor:
        return torch.zeros(self.batch_shape, dtype=self.param.dtype, device=self.param.device)


class TanhDelta(Delta):
    """A :class:`Delta` on ``param`` squashed by a tanh into ``[low, high]``.

    >>> TanhDelta(torch.tensor([100.0]), low=0.0, high=2.0).mode
    tensor([2.0000])
    """

    def __init__(
        self,
        param: torch.Tensor,
        low: float | torch.Tensor = -1.0,
        high: float | torch.Tensor = 1.0,
        event_dims: int = 1,
        atol: float = 1e-6,
        rtol: float = 1e-6,
    ) -> None:
        low, high, unit = prepare_bounds(low, high, param, "TanhDelta")
        self.low, self.high = low, high
        value = safe_tanh(param)
        if not unit:
            value = low + (high - low) * (value + 1) / 2
        super().__init__(value, atol=atol, rtol=rtol, event_dims=event_dims)

    @property
    def support(self):
        return constraints.independent(constraints.interval(self.low, self.high), self.event_dims)
