"""Value normalisers: running estimates of the location and scale of value targets.

A critic regresses ``normalize(target)`` so that its loss keeps one scale while returns
grow, and ``denormalize`` maps its predictions back to the reward scale for bootstrapping.
Every normaliser reduces all leading dims of a tensor whose trailing dims are ``shape``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["PercentileValueNorm", "PopArtValueNorm", "RunningValueNorm", "ValueNorm"]


def _shape(shape: int | tuple[int, ...]) -> tuple[int, ...]:
    out = (shape,) if isinstance(shape, int) else tuple(shape)
    if not out or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in out):
        raise ValueError(f"shape must be a positive int or a tuple of them, found {shape!r}")
    return out


class ValueNorm(nn.Module):
    """Base of the value normalisers: :meth:`update` folds a batch of targets into the
    running statistics; :meth:`normalize`, :meth:`denormalize` and :meth:`scale` use them.

    Subclasses implement ``_update(flat)`` (``flat``: ``[N, *shape]``), :meth:`location` and
    :meth:`scale`; ``normalize(x) = (x - location) / scale``.

    >>> class Fixed(ValueNorm):
    ...     def _update(self, flat): pass
    ...     def location(self): return torch.zeros(self.shape)
    ...     def scale(self): return torch.full(self.shape, 2.0)
    >>> Fixed().normalize(torch.tensor([[4.0]]))
    tensor([[2.]])
    """

    def __init__(self, *, shape: int | tuple[int, ...] = 1, epsilon: float = 1e-5,
                 device: torch.device | None = None) -> None:
        super().__init__()
        if not (isinstance(epsilon, (int, float)) and epsilon > 0):
            raise ValueError(f"epsilon must be > 0, found {epsilon!r}")
        self.shape = _shape(shape)
        self.epsilon = float(epsilon)
        self._device = device

    def _flat(self, value: Tensor, what: str) -> Tensor:
        if not isinstance(value, Tensor):
            raise TypeError(f"{type(self).__name__}.{what} expects a tensor, found "
                            f"{type(value).__name__}")
        n = len(self.shape)
        if tuple(value.shape[value.ndim - n:]) != self.shape or value.ndim < n:
            raise ValueError(
                f"{type(self).__name__} has shape={self.shape}, found a value with trailing "
                f"shape {tuple(value.shape[max(value.ndim - n, 0):])}"
            )
        return value.reshape(-1, *self.shape)

    @torch.no_grad()
    def update(self, value_target: Tensor) -> None:
        """Fold the targets ``[..., *shape]`` into the running statistics."""
        flat = self._flat(value_target, "update").detach()
        if flat.shape[0]:
            self._update(flat.to(self.location().dtype))

    def _update(self, flat: Tensor) -> None:
        raise NotImplementedError

    def location(self) -> Tensor:
        """The running location (``shape``) that :meth:`normalize` subtracts."""
        raise NotImplementedError

    def scale(self) -> Tensor:
        """The running scale (``shape``) that :meth:`normalize` divides by."""
        raise NotImplementedError

    def normalize(self, value: Tensor) -> Tensor:
        """``(value - location) / scale``."""
        self._flat(value, "normalize")
        return (value - self.location()) / self.scale()

    def denormalize(self, value: Tensor) -> Tensor:
        """``value * scale + location``, the inverse of :meth:`normalize`."""
        self._flat(value, "denormalize")
        return value * self.scale() + self.location()


class PopArtValueNorm(ValueNorm):
    """Exponential moving averages of the target mean and mean square, debiased (as in
    PopArt / MAPPO's value normaliser): ``mean = m / d``, ``var = max(s / d - mean^2, 0)``
    with ``m``, ``s``, ``d`` moving at rate ``1 - beta`` towards the batch mean, mean square
    and 1. ``scale = sqrt(var + epsilon)``.

    Keyword Args:
        shape: the value's trailing shape (default 1).
        beta: the decay, in ``(0, 1)`` (default ``0.99999``).
        epsilon: added to the variance, and the floor of ``d`` (default ``1e-5``).
        device: where the buffers live.

    >>> vn = PopArtValueNorm(beta=0.5)
    >>> vn.update(torch.tensor([[1.0], [3.0]]))  # mean 2, variance 1
    >>> vn.normalize(torch.tensor([[2.0]])), vn.denormalize(torch.tensor([[1.0]]))
    (tensor([[0.]]), tensor([[3.0000]]))
    """

    def __init__(self, *, shape: int | tuple[int, ...] = 1, beta: float = 0.99999,
                 epsilon: float = 1e-5, device: torch.device | None = None) -> None:
        super().__init__(shape=shape, epsilon=epsilon, device=device)
        if not 0 < beta < 1:
            raise ValueError(f"beta must be in (0, 1), found {beta!r}")
        self.beta = float(beta)
        self.register_buffer("running_mean", torch.zeros(self.shape, device=device))
        self.register_buffer("running_mean_sq", torch.zeros(self.shape, device=device))
        self.register_buffer("debiasing_term", torch.zeros((), device=device))

    def _update(self, flat: Tensor) -> None:
        rate = 1.0 - self.beta
        self.running_mean.lerp_(flat.mean(0), rate)
        self.running_mean_sq.lerp_(flat.pow(2).mean(0), rate)
        self.debiasing_term.lerp_(torch.ones_like(self.debiasing_term), rate)

    def _moments(self) -> tuple[Tensor, Tensor]:
        debias = self.debiasing_term.clamp_min(self.epsilon)
        mean = self.running_mean / debias
        var = (self.running_mean_sq / debias - mean.pow(2)).clamp_min(0.0)
        return mean, var

    def location(self) -> Tensor:
        """The debiased running mean."""
        return self._moments()[0]

    def scale(self) -> Tensor:
        """``sqrt(debiased variance + epsilon)``."""
        return (self._moments()[1] + self.epsilon).sqrt()


class RunningValueNorm(ValueNorm):
    """The exact mean and (population) variance of every target seen so far (Welford's
    algorithm, batches merged with Chan's formula); ``scale = sqrt(var + epsilon)``.

    Keyword Args:
        shape, epsilon, device: as for :class:`PopArtValueNorm`.

    >>> vn = RunningValueNorm()
    >>> vn.update(torch.tensor([[1.0], [3.0]]))
    >>> vn.update(torch.tensor([[5.0]]))  # 1, 3, 5: mean 3, variance 8 / 3
    >>> vn.location(), vn.scale()
    (tensor([3.]), tensor([1.6330]))
    """

    def __init__(self, *, shape: int | tuple[int, ...] = 1, epsilon: float = 1e-5,
                 device: torch.device | None = None) -> None:
        super().__init__(shape=shape, epsilon=epsilon, device=device)
        self.register_buffer("mean", torch.zeros(self.shape, device=device))
        self.register_buffer("m2", torch.zeros(self.shape, device=device))
        self.register_buffer("count", torch.zeros((), device=device))

    def _update(self, flat: Tensor) -> None:
        n = float(flat.shape[0])
        batch_mean = flat.mean(0)
        batch_m2 = (flat - batch_mean).pow(2).sum(0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.m2.add_(batch_m2 + delta.pow(2) * self.count * n / total)
        self.mean.add_(delta * n / total)
        self.count.copy_(total)

    def location(self) -> Tensor:
        """The running mean."""
        return self.mean

    def scale(self) -> Tensor:
        """``sqrt(variance + epsilon)`` (variance 0 before any update)."""
        var = self.m2 / self.count.clamp_min(1.0)
        return (var + self.epsilon).sqrt()


class PercentileValueNorm(ValueNorm):
    """DreamerV3's return normaliser: moving averages ``low`` / ``high`` of a low and a high
    quantile of the targets (rate ``rate`` towards each batch's quantiles, from 0) and
    ``scale = max(min_scale, high - low)``, so large returns are scaled down and small ones
    are never amplified. ``normalize`` divides by the scale and subtracts ``low`` first only
    with ``center=True``.

    Keyword Args:
        shape: the value's trailing shape (default 1).
        quantiles: ``(low, high)``, ``0 <= low < high <= 1`` (default ``(0.05, 0.95)``).
        rate: the moving-average rate in ``[0, 1]`` (default 0.01).
        min_scale: the scale's floor, > 0 (default 1.0).
        center: subtract ``low`` in :meth:`normalize` (default ``False``).
        epsilon: accepted for a common signature; ``min_scale`` bounds the divisor.
        device: where the buffers live.

    >>> vn = PercentileValueNorm(rate=1.0)
    >>> vn.update(torch.linspace(0.0, 100.0, steps=101).unsqueeze(-1))
    >>> vn.scale(), vn.normalize(torch.tensor([45.0]))
    (tensor([90.]), tensor([0.5000]))
    """

    def __init__(self, *, shape: int | tuple[int, ...] = 1,
                 quantiles: tuple[float, float] = (0.05, 0.95), rate: float = 0.01,
                 min_scale: float = 1.0, center: bool = False, epsilon: float = 1e-5,
                 device: torch.device | None = None) -> None:
        super().__init__(shape=shape, epsilon=epsilon, device=device)
        low, high = quantiles
        if not 0 <= low < high <= 1:
            raise ValueError(f"quantiles must satisfy 0 <= low < high <= 1, found {quantiles!r}")
        if not 0 <= rate <= 1:
            raise ValueError(f"rate must be in [0, 1], found {rate!r}")
        if not (math.isfinite(min_scale) and min_scale > 0):
            raise ValueError(f"min_scale must be > 0, found {min_scale!r}")
        self.quantiles = (float(low), float(high))
        self.rate = float(rate)
        self.min_scale = float(min_scale)
        self.center = bool(center)
        self.register_buffer("low", torch.zeros(self.shape, device=device))
        self.register_buffer("high", torch.zeros(self.shape, device=device))

    def _update(self, flat: Tensor) -> None:
        levels = torch.tensor(self.quantiles, dtype=flat.dtype, device=flat.device)
        low, high = torch.quantile(flat, levels, dim=0)
        self.low.lerp_(low, self.rate)
        self.high.lerp_(high, self.rate)

    def location(self) -> Tensor:
        """``low`` with ``center=True``, else zeros."""
        return self.low if self.center else torch.zeros_like(self.low)

    def scale(self) -> Tensor:
        """``max(min_scale, high - low)``."""
        return (self.high - self.low).clamp_min(self.min_scale)
