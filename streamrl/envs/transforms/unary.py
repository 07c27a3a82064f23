"""UnaryTransform: any one-argument function applied to entries, in either direction.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import UnaryTransform
>>> t = UnaryTransform(in_keys=["x"], out_keys=["x2"], fn=lambda v: v * v)
>>> t(TensorDict({"x": torch.tensor([1.0, -3.0])}))["x2"]
tensor([1., 9.])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import NonTensorData, NonTensorStack, TensorDictBase

from streamrl.data.specs import Composite, NonTensor, Unbounded
from streamrl.envs.transforms.transform import Transform, as_keys, keys_repr

__all__ = ["UnaryTransform"]


def _spec_of(value: Any, spec: Any) -> Any:
    """The spec of ``value``, one output of the function on a value of ``spec``."""
    if isinstance(value, torch.Tensor):
        return Unbounded(shape=value.shape, device=spec.device, dtype=value.dtype)
    if isinstance(value, TensorDictBase):
        return Composite(
            {k: _spec_of(v, spec) for k, v in value.items()},
            shape=value.batch_size,
            device=spec.device,
        )
    return NonTensor(shape=spec.shape, device=spec.device, example_data=value)


class UnaryTransform(Transform):
    """Apply ``fn`` to each ``in_keys`` entry, writing ``out_keys`` (and ``inv_fn`` on the
    action path, from ``out_keys_inv`` to ``in_keys_inv``).

    Args:
        in_keys: entries given to ``fn``.
        out_keys: entries written with its results (one per ``in_keys`` entry).
        in_keys_inv: action-path entries as the base env reads them (``inv_fn``'s outputs).
        out_keys_inv: action-path entries as users write them; defaults to ``in_keys_inv``.

    Keyword Args:
        fn: the map, tensor (or TensorDict or non-tensor value) to tensor, TensorDict or
            non-tensor value.
        inv_fn: the action-path map; defaults to ``fn``.
        use_raw_nontensor: if ``False`` (the default), ``NonTensorData``/``NonTensorStack``
            entries are unwrapped (``.data``/``.tolist()``) before ``fn`` sees them.

    The spec of an output is derived from ``fn`` applied to the input spec's ``zero()``:
    a tensor result gives an :class:`~streamrl.data.specs.Unbounded` spec of its shape and
    dtype, a TensorDict a Composite, anything else a ``NonTensor`` spec. On the action
    path, the spec users see is ``fn`` applied to the base env's spec.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> t = UnaryTransform(["a"], ["b"], ["act"], fn=torch.neg, inv_fn=torch.abs)
    >>> t(TensorDict({"a": torch.tensor([2.0])}))["b"]
    tensor([-2.])
    >>> t.inv(TensorDict({"act": torch.tensor([-5.0])}))["act"]
    tensor([5.])
    """

    def __init__(
        self,
        in_keys: Any,
        out_keys: Any,
        in_keys_inv: Any = None,
        out_keys_inv: Any = None,
        *,
        fn: Callable[[Any], Any],
        inv_fn: Callable[[Any], Any] | None = None,
        use_raw_nontensor: bool = False,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, found {type(fn).__name__}")
        if inv_fn is not None and not callable(inv_fn):
            raise TypeError(f"inv_fn must be callable or None, found {type(inv_fn).__name__}")
        if out_keys is None:
            raise ValueError("UnaryTransform needs out_keys (one per in_keys entry)")
        super().__init__(as_keys(in_keys, "in_keys"), out_keys, in_keys_inv, out_keys_inv)
        self.fn = fn
        self.inv_fn = inv_fn
        self.use_raw_nontensor = bool(use_raw_nontensor)

    def _unwrap(self, value: Any) -> Any:
        if self.use_raw_nontensor:
            return value
        if isinstance(value, NonTensorData):
            return value.data
        if isinstance(value, NonTensorStack):
            return value.tolist()
        return value

    def _apply_transform(self, value: Any) -> Any:
        return self.fn(self._unwrap(value))

    def _inv_apply_transform(self, value: Any) -> Any:
        fn = self.fn if self.inv_fn is None else self.inv_fn
        return fn(self._unwrap(value))

    def _transform_spec(self, spec: Any) -> Any:
        return _spec_of(self._apply_transform(spec.zero()), spec)

    def _inv_transform_spec(self, spec: Any) -> Any:
        # users write what fn makes of the env's values (inv_fn maps them back)
        return _spec_of(self._apply_transform(spec.zero()), spec)

    def __repr__(self) -> str:
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        return (
            f"UnaryTransform(in_keys={keys_repr(self.in_keys)}, "
            f"out_keys={keys_repr(self.out_keys)}, fn={name})"
        )
