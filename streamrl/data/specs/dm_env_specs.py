"""Conversion from dm_env specs (DeepMind's env API, used by dm_control) to specs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from streamrl.data.specs._base import TensorSpec, _torch_dtype
from streamrl.data.specs.bounded import Bounded
from streamrl.data.specs.composite import Composite
from streamrl.data.specs.unbounded import Unbounded

__all__ = ["spec_from_dm_env"]


def spec_from_dm_env(spec: Any, device: Any = None) -> TensorSpec | Composite:
    """Convert a dm_env spec to a spec.

    ``BoundedArray`` (and its ``DiscreteArray``) -> :class:`Bounded`; ``Array`` ->
    :class:`Unbounded`; a mapping of specs (dm_control's ``OrderedDict`` of observation
    specs) -> :class:`Composite` with one entry per key. The dtype is kept (dm_control's
    float64 stays float64, as in TorchRL); a scalar spec (shape ``()``) becomes shape
    ``(1,)``, as TorchRL does, so that every entry has a feature dim.

    >>> from dm_env import specs
    >>> spec_from_dm_env(specs.BoundedArray((2,), np.float64, -1.0, 1.0)).high
    tensor([1., 1.], dtype=torch.float64)
    >>> spec_from_dm_env({"height": specs.Array((), np.float64)})["height"].shape
    torch.Size([1])
    """
    import dm_env.specs

    if isinstance(spec, Mapping):
        return Composite(
            {key: spec_from_dm_env(value, device) for key, value in spec.items()},
            shape=(),
            device=device,
        )
    if not isinstance(spec, dm_env.specs.Array):
        raise TypeError(
            f"cannot convert {type(spec).__name__} to a spec; expected a dm_env Array, "
            "BoundedArray or a mapping of them"
        )
    shape = tuple(spec.shape) or (1,)
    dtype = _torch_dtype(spec.dtype)
    if isinstance(spec, dm_env.specs.BoundedArray):
        low = np.broadcast_to(np.asarray(spec.minimum, dtype=spec.dtype), spec.shape).copy()
        high = np.broadcast_to(np.asarray(spec.maximum, dtype=spec.dtype), spec.shape).copy()
        return Bounded(low.reshape(shape), high.reshape(shape), shape, device, dtype)
    return Unbounded(shape, device, dtype)
