"""Small layers shared by the model builders."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SquashDims", "Squeeze"]


class SquashDims(nn.Module):
    """Flatten the last ``ndims_in`` dimensions into one.

    The default aggregator of :class:`~streamrl.modules.ConvNet`: a ``[B, C, H, W]`` feature map
    becomes ``[B, C * H * W]``.

    >>> SquashDims()(torch.zeros(10, 64, 4, 4)).shape
    torch.Size([10, 1024])
    """

    def __init__(self, ndims_in: int = 3) -> None:
        super().__init__()
        if ndims_in < 1:
            raise ValueError(f"ndims_in must be >= 1, got {ndims_in}")
        self.ndims_in = ndims_in

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        if value.ndim < self.ndims_in:
            raise ValueError(
                f"SquashDims expected at least {self.ndims_in} dims, got shape {tuple(value.shape)}"
            )
        return value.flatten(-self.ndims_in)


class Squeeze(nn.Module):
    """Remove dimension ``dim`` when it has size 1 (a no-op otherwise).

    >>> Squeeze(-1)(torch.zeros(3, 1)).shape
    torch.Size([3])
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return value.squeeze(self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
