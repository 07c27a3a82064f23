"""RunningMeanStd: running mean and variance of a stream of batches (Welford/Chan merge).

>>> import torch
>>> from streamrl.envs.transforms import RunningMeanStd
>>> rms = RunningMeanStd(shape=(2,), epsilon=0.0)
>>> rms.update(torch.tensor([[1.0, 0.0], [3.0, 0.0]]))
>>> rms.mean, rms.var
(tensor([2., 0.]), tensor([1., 0.]))
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["RunningMeanStd"]

_NORM_EPS = 1e-8


class RunningMeanStd(nn.Module):
    """Running mean and (population) variance, updated batch by batch.

    Each batch's mean and variance are merged into the running ones with the parallel form
    of Welford's algorithm (Chan et al.), which stays accurate over long streams. ``mean``,
    ``var`` and ``count`` are buffers: they are in ``state_dict()`` and follow ``.to()``.

    Args:
        shape: the feature shape tracked (``()`` for scalars, ``(obs_dim,)``...).
        epsilon: the initial count (a small pseudo-count of the initial ``mean=0, var=1``
            that keeps the first merge stable). Default ``1e-4``.

    >>> import torch
    >>> rms = RunningMeanStd(shape=(4,))
    >>> rms.update(torch.randn(32, 4))
    >>> rms.normalize(torch.randn(8, 4)).shape
    torch.Size([8, 4])
    """

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, shape: Any = (), epsilon: float = 1e-4) -> None:
        super().__init__()
        if isinstance(shape, int):
            shape = (shape,)
        try:
            shape = torch.Size(shape)
        except TypeError:
            raise TypeError(f"shape must be a tuple of ints, found {shape!r}") from None
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
            raise TypeError(f"epsilon must be a number, found {epsilon!r}")
        if not (math.isfinite(epsilon) and epsilon >= 0):
            raise ValueError(f"epsilon must be finite and >= 0, found {epsilon}")
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.tensor(float(epsilon)))

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"RunningMeanStd expects a tensor, found {type(x).__name__}")
        n = self.mean.ndim
        if x.ndim < n or tuple(x.shape[x.ndim - n :]) != tuple(self.mean.shape):
            raise ValueError(
                f"RunningMeanStd: the trailing dims of x {tuple(x.shape)} must be the tracked "
                f"shape {tuple(self.mean.shape)}"
            )

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge a batch into the statistics: every leading dim of ``x`` is a batch dim and
        its trailing dims must be ``shape`` (a single sample of ``shape`` is a batch of 1)."""
        self._check(x)
        flat = x.reshape(-1, *self.mean.shape).to(self.mean.dtype)
        n = flat.shape[0]
        if n == 0:
            return
        batch_mean = flat.mean(0)
        batch_var = flat.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total
        self.mean.add_(delta * n / total)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / sqrt(var + 1e-8)``: approximately zero mean and unit variance."""
        self._check(x)
        return (x - self.mean) / torch.sqrt(self.var + _NORM_EPS)

    def extra_repr(self) -> str:
        return f"shape={tuple(self.mean.shape)}, count={float(self.count):.4g}"
