"""Bounded specs: values in a box ``[low, high]`` (continuous or integer)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from streamrl.data.specs._base import TensorSpec, _device, _size, _tensor_repr, _torch_dtype
from streamrl.data.specs.boxes import Box

__all__ = ["Bounded", "BoundedContinuous", "BoundedDiscrete", "ContinuousBox"]


class ContinuousBox(Box):
    """The box ``[low, high]`` of a :class:`Bounded` spec (elementwise bounds)."""

    def __init__(self, low: torch.Tensor, high: torch.Tensor) -> None:
        self.low = low
        self.high = high

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ContinuousBox)
            and self.low.shape == other.low.shape
            and torch.equal(self.low, other.low.to(self.low))
            and torch.equal(self.high, other.high.to(self.high))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"ContinuousBox(\n    low={_tensor_repr(self.low)},\n"
            f"    high={_tensor_repr(self.high)})"
        )


def _as_tensor(x: Any, device: torch.device, dtype: torch.dtype | None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.to(device)
    else:
        t = torch.as_tensor(np.asarray(x), device=device)
    return t if dtype is None else t.to(dtype)


class Bounded(TensorSpec):
    """Values in ``[low, high]`` (bounds broadcast to ``shape``).

    ``dtype`` defaults to the bounds' float dtype, else float32; an integer dtype makes the
    domain discrete. Infinite bounds are allowed (``rand`` then samples a clamped normal).

    >>> spec = Bounded(-2.0, 2.0, shape=(1,))
    >>> spec.is_in(spec.rand()), spec.is_in(torch.tensor([3.0]))
    (True, False)
    >>> spec.project(torch.tensor([3.0]))
    tensor([2.])

    As in TorchRL, ``Bounded(...)`` makes a :class:`BoundedContinuous` or a
    :class:`BoundedDiscrete` (both are ``Bounded``) when the dtype or ``domain`` says which:

    >>> type(Bounded(0, 5, shape=(2,), dtype=torch.int64)).__name__
    'BoundedDiscrete'
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Bounded:
        if cls is Bounded:
            names = ("low", "high", "shape", "device", "dtype", "domain")
            given = {**dict(zip(names, args, strict=False)), **kwargs}
            dtype, domain = given.get("dtype"), given.get("domain")
            # no dtype: the bounds' float dtype, else float32 (see __init__)
            floating = dtype is None or _torch_dtype(dtype).is_floating_point
            if domain in (None, "continuous") and floating:
                cls = BoundedContinuous
            elif domain in (None, "discrete") and not floating:
                cls = BoundedDiscrete
        return super().__new__(cls)

    def __init__(
        self,
        low: Any,
        high: Any,
        shape: Any = None,
        device: Any = None,
        dtype: Any = None,
        domain: str | None = None,
    ) -> None:
        dev = _device(device)
        if dtype is None:
            lt = low if isinstance(low, torch.Tensor) else None
            dtype = lt.dtype if lt is not None and lt.is_floating_point() else torch.float32
        dtype = _torch_dtype(dtype)
        low_t = _as_tensor(low, dev, dtype)
        high_t = _as_tensor(high, dev, dtype)
        if shape is None:
            shape = torch.broadcast_shapes(low_t.shape, high_t.shape)
        shape = _size(shape)
        try:
            low_t = low_t.expand(shape).clone()
            high_t = high_t.expand(shape).clone()
        except RuntimeError:
            raise ValueError(
                f"bounds of shape {tuple(low_t.shape)} / {tuple(high_t.shape)} do not "
                f"broadcast to shape {tuple(shape)}"
            ) from None
        if bool((low_t > high_t).any()):
            raise ValueError(f"low must be <= high, found low={low_t} high={high_t}")
        super().__init__(shape, dev, dtype)
        self.space = ContinuousBox(low_t, high_t)
        if domain is None:
            domain = "continuous" if dtype.is_floating_point else "discrete"
        self.domain = domain

    @property
    def low(self) -> torch.Tensor:
        """Lower bound, shaped like the spec."""
        return self.space.low

    @property
    def high(self) -> torch.Tensor:
        """Upper bound, shaped like the spec."""
        return self.space.high

    def rand(self, shape: Any = None) -> torch.Tensor:
        """Uniform in the box (clamped normal along infinite bounds)."""
        full = (*_size(shape), *self.shape)
        low, high = self.low, self.high
        if self.dtype.is_floating_point:
            u = torch.rand(full, device=self.device, dtype=self.dtype)
            if self._finite():
                return torch.addcmul(low, high - low, u)
            low, high = low.expand(full), high.expand(full)
            finite = torch.isfinite(low) & torch.isfinite(high)
            out = torch.randn(full, device=self.device, dtype=self.dtype)
            out = torch.where(finite, low + (high - low) * u, out)
            return torch.maximum(torch.minimum(out, high), low)
        lo, hi = low.expand(full).to(torch.float64), high.expand(full).to(torch.float64)
        u = torch.rand(full, device=self.device, dtype=torch.float64)
        val = torch.floor(lo + (hi - lo + 1) * u)
        return torch.minimum(val, hi).to(self.dtype)

    def _finite(self) -> bool:
        # cached per bounds object: rand() runs once per env step
        key = (id(self.space.low), id(self.space.high))
        cached = getattr(self, "_finite_cache", None)
        if cached is None or cached[0] != key:
            ok = bool(torch.isfinite(self.low).all() and torch.isfinite(self.high).all())
            cached = (key, ok, self.space.low, self.space.high)  # refs keep the ids unique
            self._finite_cache = cached
        return cached[1]

    def cardinality(self) -> int | float:
        """The number of distinct values: ``inf`` for a float dtype, else the product of
        ``high - low + 1`` over the elements.

        >>> Bounded(0, 2, shape=(2,), dtype=torch.int64).cardinality()
        9
        """
        if self.dtype.is_floating_point:
            return float("inf")
        return int((self.high.long() - self.low.long() + 1).prod())

    def zero(self, shape: Any = None) -> torch.Tensor:
        """Zeros, clamped into the box."""
        z = super().zero(shape)
        return torch.maximum(torch.minimum(z, self.high), self.low)

    def _values_ok(self, val: torch.Tensor) -> bool:
        return bool(((val >= self.low) & (val <= self.high)).all())

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        """Clamp into the box (rounding first for integer dtypes)."""
        if not self.dtype.is_floating_point and val.is_floating_point():
            val = val.round()
        return torch.clamp(val.to(self.dtype), self.low, self.high)

    def _reshaped(self, shape: torch.Size, index: Any = None) -> Bounded:
        if index is None:
            low, high = self.low.expand(shape), self.high.expand(shape)
        elif isinstance(index, tuple) and index and index[0] in ("unsqueeze", "squeeze", "reshape"):
            op, dim = index
            if op == "reshape":
                low, high = self.low.reshape(shape), self.high.reshape(shape)
            elif op == "unsqueeze":
                low, high = self.low.unsqueeze(dim), self.high.unsqueeze(dim)
            elif dim is None:
                low, high = self.low.squeeze(), self.high.squeeze()
            else:
                low, high = self.low.squeeze(dim), self.high.squeeze(dim)
        else:
            low, high = self.low[index], self.high[index]
        return self._new(low, high, shape, self.device, self.dtype)

    def _new(self, low: Any, high: Any, shape: Any, device: Any, dtype: Any) -> Bounded:
        domain = self.domain if dtype == self.dtype else None  # a cast re-derives the domain
        return Bounded(low, high, shape, device, dtype, domain)

    def to(self, dest: Any) -> Bounded:
        """A copy on device ``dest``, or with bounds cast to dtype ``dest``."""
        if isinstance(dest, torch.dtype):
            return self._new(self.low.to(dest), self.high.to(dest), self.shape, self.device, dest)
        return super().to(dest)

    def _space_eq(self, other: TensorSpec) -> bool:
        return self.space == other.space  # type: ignore[attr-defined]

    def _space_str(self) -> str:
        return repr(self.space)


class BoundedContinuous(Bounded):
    """A :class:`Bounded` spec with a float dtype (float32 by default), domain continuous.

    >>> BoundedContinuous(0.0, 1.0, shape=(2,)).rand().dtype
    torch.float32
    """

    def __init__(
        self,
        low: Any,
        high: Any,
        shape: Any = None,
        device: Any = None,
        dtype: Any = None,
        domain: str = "continuous",
    ) -> None:
        if dtype is not None and not _torch_dtype(dtype).is_floating_point:
            raise ValueError(f"BoundedContinuous needs a float dtype, found {dtype}")
        super().__init__(low, high, shape, device, dtype, domain)

    def _new(self, low: Any, high: Any, shape: Any, device: Any, dtype: Any) -> Bounded:
        if not _torch_dtype(dtype).is_floating_point:
            return Bounded(low, high, shape, device, dtype)
        return BoundedContinuous(low, high, shape, device, dtype, self.domain)


class BoundedDiscrete(Bounded):
    """A :class:`Bounded` spec with an integer dtype (int64 by default), domain discrete.

    >>> spec = BoundedDiscrete(0, 5, shape=(3,))
    >>> spec.rand().dtype, spec.is_in(torch.tensor([0, 5, 2]))
    (torch.int64, True)
    """

    def __init__(
        self,
        low: Any,
        high: Any,
        shape: Any = None,
        device: Any = None,
        dtype: Any = torch.int64,
        domain: str = "discrete",
    ) -> None:
        dtype = torch.int64 if dtype is None else _torch_dtype(dtype)
        if dtype.is_floating_point:
            raise ValueError(f"BoundedDiscrete needs an integer dtype, found {dtype}")
        super().__init__(low, high, shape, device, dtype, domain)

    def _new(self, low: Any, high: Any, shape: Any, device: Any, dtype: Any) -> Bounded:
        if _torch_dtype(dtype).is_floating_point:
            return Bounded(low, high, shape, device, dtype)
        return BoundedDiscrete(low, high, shape, device, dtype, self.domain)
