"""Unbounded specs: any value of a dtype."""

from __future__ import annotations

from typing import Any

import torch

from streamrl.data.specs._base import TensorSpec, _size, _torch_dtype
from streamrl.data.specs.bounded import ContinuousBox

__all__ = ["Unbounded", "UnboundedContinuous", "UnboundedDiscrete"]


class Unbounded(TensorSpec):
    """Any value of the given dtype (float32 by default); the domain follows the dtype.

    ``shape`` defaults to ``(1,)``, as in TorchRL. ``Unbounded(...)`` makes an
    :class:`UnboundedContinuous` for a float dtype and an :class:`UnboundedDiscrete` for any
    other (both are ``Unbounded``).

    >>> Unbounded(shape=(3,)).rand().shape
    torch.Size([3])
    >>> spec = Unbounded(dtype=torch.int64)
    >>> type(spec).__name__, spec.shape
    ('UnboundedDiscrete', torch.Size([1]))
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Unbounded:
        if cls is Unbounded:
            dtype = kwargs.get("dtype", args[2] if len(args) > 2 else torch.float32)
            floating = dtype is None or _torch_dtype(dtype).is_floating_point
            cls = UnboundedContinuous if floating else UnboundedDiscrete
        return super().__new__(cls)

    def __init__(self, shape: Any = None, device: Any = None, dtype: Any = torch.float32) -> None:
        super().__init__((1,) if shape is None else shape, device, dtype)
        self.domain = "continuous" if self.dtype.is_floating_point else "discrete"

    def rand(self, shape: Any = None) -> torch.Tensor:
        """A standard normal sample (uniform integers for integer dtypes)."""
        full = (*_size(shape), *self.shape)
        if self.dtype.is_floating_point:
            return torch.randn(full, device=self.device, dtype=self.dtype)
        if self.dtype == torch.bool:
            return torch.randint(0, 2, full, device=self.device).bool()
        info = torch.iinfo(self.dtype)
        lo, hi = max(info.min, -(2**31)), min(info.max, 2**31 - 1)
        return torch.randint(lo, hi, full, device=self.device, dtype=self.dtype)

    def _values_ok(self, val: torch.Tensor) -> bool:
        return True

    _space: ContinuousBox | None = None  # a space assigned to the spec

    @property
    def space(self) -> ContinuousBox:
        """The box of the dtype's whole range (``-inf..inf`` for floats), unless a box was
        assigned to ``space``.

        >>> Unbounded((2,)).space.high
        tensor([inf, inf])
        """
        if self._space is not None:
            return self._space
        if self.dtype.is_floating_point:
            lo, hi = float("-inf"), float("inf")
        elif self.dtype == torch.bool:
            lo, hi = False, True
        else:
            info = torch.iinfo(self.dtype)
            lo, hi = info.min, info.max
        size = [1 if d == -1 else d for d in self.shape]  # dynamic dims broadcast
        low = torch.full(size, lo, device=self.device, dtype=self.dtype)
        high = torch.full(size, hi, device=self.device, dtype=self.dtype)
        return ContinuousBox(low, high)

    @space.setter
    def space(self, value: ContinuousBox) -> None:
        self._space = value

    def cardinality(self) -> float:
        """``inf``: an unbounded spec holds too many values to count."""
        return float("inf")

    def _reshaped(self, shape: torch.Size, index: Any = None) -> Unbounded:
        out = self.clone()
        out.shape = shape
        return out

    def _space_str(self) -> str:
        return "None"


class UnboundedContinuous(Unbounded):
    """An :class:`Unbounded` spec with a float dtype (float32 by default)."""


class UnboundedDiscrete(Unbounded):
    """An :class:`Unbounded` spec with an integer dtype (int64 by default)."""

    def __init__(self, shape: Any = None, device: Any = None, dtype: Any = torch.int64) -> None:
        super().__init__(shape, device, dtype)
