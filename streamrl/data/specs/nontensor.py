"""NonTensor: a spec for non-tensor entries (strings, objects) of a TensorDict."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import NonTensorData, NonTensorStack

from streamrl.data.specs._base import TensorSpec, _device, _size

__all__ = ["NonTensor"]


class NonTensor(TensorSpec):
    """Non-tensor data (a string, an object) held as ``NonTensorData`` of batch ``shape``.

    ``shape`` defaults to ``(1,)``; ``dtype`` is optional (``None``). ``rand``/``zero``/
    ``one`` return a ``NonTensorData`` holding ``example_data`` (``None`` by default);
    ``is_in`` accepts any non-tensor value whose batch shape ends with ``shape``.

    >>> spec = NonTensor(example_data="hello")
    >>> val = spec.rand()
    >>> val.data, val.batch_size, spec.is_in(val), spec.is_in(torch.zeros(1))
    ('hello', torch.Size([1]), True, False)
    """

    domain = "nontensor"

    def __init__(
        self,
        shape: Any = (1,),
        device: Any = None,
        dtype: torch.dtype | None = None,
        example_data: Any = None,
    ) -> None:
        if dtype is not None and not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype must be a torch.dtype or None, found {dtype!r}")
        self.shape = _size(shape)
        self.device = _device(device)
        self.dtype = dtype  # type: ignore[assignment]
        self.example_data = example_data

    def _make(self, shape: Any) -> NonTensorData:
        return NonTensorData(
            data=self.example_data, batch_size=(*_size(shape), *self.shape), device=self.device
        )

    def rand(self, shape: Any = None) -> NonTensorData:  # type: ignore[override]
        """A ``NonTensorData`` holding ``example_data`` (extra leading dims ``shape``)."""
        return self._make(shape)

    def zero(self, shape: Any = None) -> NonTensorData:  # type: ignore[override]
        """Same as :meth:`rand`: there is no zero of non-tensor data."""
        return self._make(shape)

    def one(self, shape: Any = None) -> NonTensorData:  # type: ignore[override]
        """Same as :meth:`rand`."""
        return self._make(shape)

    def is_in(self, val: Any) -> bool:
        """Whether ``val`` is non-tensor data whose batch shape ends with ``shape``."""
        if not isinstance(val, NonTensorData | NonTensorStack):
            return False
        n = self.ndim
        return val.batch_dims >= n and (n == 0 or val.batch_size[-n:] == self.shape)

    def check(self, val: Any, name: str = "value") -> None:
        """Raise ``TypeError``/``ValueError`` saying why ``val`` is not in the spec."""
        if not isinstance(val, NonTensorData | NonTensorStack):
            raise TypeError(f"{name}: expected NonTensorData, found {type(val).__name__}")
        if not self.is_in(val):
            raise ValueError(f"{name}: expected batch shape {self.shape}, found {val.batch_size}")

    assert_is_in = check

    def _project(self, val: Any) -> Any:
        """Non-tensor data has no nearest value: ``val`` is returned as it is."""
        return val

    def encode(self, val: Any, *, ignore_device: bool = False) -> NonTensorData:  # type: ignore[override]
        """Wrap ``val`` in ``NonTensorData`` of batch ``shape`` (on the spec's device
        unless ``ignore_device``)."""
        if isinstance(val, NonTensorData | NonTensorStack):
            return val
        device = None if ignore_device else self.device
        return NonTensorData(data=val, batch_size=self.shape, device=device)

    def cardinality(self) -> int:
        """Non-tensor values cannot be counted: raises ``RuntimeError``."""
        raise RuntimeError("Cannot enumerate a NonTensor.")

    def to_numpy(self, val: Any, safe: bool | None = None) -> Any:
        """Non-tensor data has no array form: ``val`` is returned (checked if ``safe``)."""
        if safe:
            self.check(val)
        return val

    def _reshaped(self, shape: torch.Size, index: Any = None) -> NonTensor:
        return NonTensor(shape, self.device, self.dtype, self.example_data)

    def to(self, dest: Any) -> NonTensor:
        """A copy on device ``dest`` (or with dtype ``dest``)."""
        if isinstance(dest, torch.dtype):
            return NonTensor(self.shape, self.device, dest, self.example_data)
        return NonTensor(self.shape, dest, self.dtype, self.example_data)

    def clone(self) -> NonTensor:
        """A copy (``example_data`` is shared, not copied)."""
        return NonTensor(self.shape, self.device, self.dtype, self.example_data)

    def _space_eq(self, other: TensorSpec) -> bool:
        return bool(self.example_data == getattr(other, "example_data", None))

    def _space_str(self) -> str:
        return "None"
