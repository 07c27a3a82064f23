"""Batch renormalization (Ioffe, 2017): batch norm that moves to running statistics."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BatchRenorm1d"]


class BatchRenorm1d(nn.Module):
    """Batch renormalization over the last dim of ``[*B, num_features]`` inputs.

    In training the batch is normalized with its own mean and std, then corrected towards
    the running statistics: ``x_hat = (x - mean_B) / std_B * r + d`` with
    ``r = clamp(std_B / std, 1 / max_r, max_r)`` and ``d = clamp((mean_B - mean) / std,
    -max_d, max_d)`` (both without gradient). During the first ``warmup_steps`` updates
    ``r = 1, d = 0`` (plain batch norm); with ``smooth=True`` the correction grows linearly
    over those steps instead. In eval mode the running statistics are used. The output is
    ``weight * x_hat + bias``.

    Args:
        num_features: size of the last dim.
        momentum: running statistics update rate (default 0.01).
        eps: added to the variance (default 1e-5).
        max_r, max_d: bounds of the corrections (defaults 3 and 5).
        warmup_steps: training updates before the correction applies (default 10000).
        smooth: ramp the correction in over the warm-up instead of switching it on.

    >>> norm = BatchRenorm1d(3, warmup_steps=2)
    >>> out = norm(torch.randn(16, 3) * 5 + 2)
    >>> bool(out.mean(0).abs().max() < 1e-5)  # batch norm during warm-up
    True
    >>> int(norm.steps)
    1
    """

    def __init__(
        self,
        num_features: int,
        *,
        momentum: float = 0.01,
        eps: float = 1e-5,
        max_r: float = 3.0,
        max_d: float = 5.0,
        warmup_steps: int = 10000,
        smooth: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
        if max_r < 1.0 or max_d < 0.0:
            raise ValueError(f"need max_r >= 1 and max_d >= 0, got max_r={max_r}, max_d={max_d}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.num_features = num_features
        self.momentum = momentum
        self.eps = eps
        self.max_r = max_r
        self.max_d = max_d
        self.warmup_steps = warmup_steps
        self.smooth = smooth
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        if value.ndim < 1 or value.shape[-1] != self.num_features:
            raise ValueError(
                f"BatchRenorm1d expected inputs [*B, {self.num_features}], "
                f"got {tuple(value.shape)}"
            )
        if not self.training:
            x_hat = (value - self.running_mean) / (self.running_var + self.eps).sqrt()
            return self.weight * x_hat + self.bias
        flat = value.reshape(-1, self.num_features)
        if flat.shape[0] < 2:
            raise ValueError("BatchRenorm1d needs more than one sample per batch in training")
        mean = flat.mean(0)
        var = flat.var(0, unbiased=False)
        std = (var + self.eps).sqrt()
        running_std = (self.running_var + self.eps).sqrt()
        with torch.no_grad():
            r = (std / running_std).clamp(1.0 / self.max_r, self.max_r)
            d = ((mean - self.running_mean) / running_std).clamp(-self.max_d, self.max_d)
            progress = self._progress()
            r = 1.0 + (r - 1.0) * progress
            d = d * progress
        x_hat = (value - mean) / std * r + d
        with torch.no_grad():
            unbiased = flat.var(0, unbiased=True)
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(unbiased.detach(), self.momentum)
            self.steps += 1
        return self.weight * x_hat + self.bias

    def _progress(self) -> float:
        steps = int(self.steps)
        if steps >= self.warmup_steps:
            return 1.0
        return steps / self.warmup_steps if self.smooth else 0.0

    def extra_repr(self) -> str:
        return (f"{self.num_features}, momentum={self.momentum}, eps={self.eps}, "
                f"max_r={self.max_r}, max_d={self.max_d}, warmup_steps={self.warmup_steps}, "
                f"smooth={self.smooth}")
