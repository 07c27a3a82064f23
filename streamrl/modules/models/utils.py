"""Small layers shared by the model builders."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["SquashDims", "Squeeze", "Squeeze2dLayer", "SqueezeLayer"]


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


class SqueezeLayer(nn.Module):
    """Remove the given singleton dimensions, one after the other, in order.

    Unlike :class:`Squeeze`, a dimension that is not of size 1 is an error.

    >>> SqueezeLayer((-1, -1))(torch.zeros(3, 4, 1, 1)).shape
    torch.Size([3, 4])
    >>> SqueezeLayer((-1, -2))(torch.zeros(3, 1, 1, 1)).shape  # -2 of the squeezed [3, 1, 1]
    torch.Size([3, 1])
    """

    def __init__(self, dims: Sequence[int] = (-1,)) -> None:
        super().__init__()
        dims = tuple(dims)
        if not dims or not all(isinstance(d, int) for d in dims):
            raise ValueError(f"dims must be a non-empty sequence of ints, got {dims!r}")
        self.dims = dims

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        for dim in self.dims:
            if value.ndim == 0 or not -value.ndim <= dim < value.ndim or value.shape[dim] != 1:
                raise ValueError(
                    f"{type(self).__name__} expected a singleton dim {dim} (dims={self.dims}), "
                    f"got shape {tuple(value.shape)}"
                )
            value = value.squeeze(dim)
        return value

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class Squeeze2dLayer(SqueezeLayer):
    """Remove the two trailing singleton dims of a pooled ``[*B, C, 1, 1]`` feature map.

    >>> Squeeze2dLayer()(torch.zeros(2, 64, 1, 1)).shape
    torch.Size([2, 64])
    """

    def __init__(self) -> None:
        super().__init__((-1, -1))

    def extra_repr(self) -> str:
        return ""
