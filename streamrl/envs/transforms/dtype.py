"""Dtype casts: DTypeCastTransform and its common case DoubleToFloat.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import DoubleToFloat
>>> DoubleToFloat()(TensorDict({"observation": torch.zeros(3, dtype=torch.float64)}))[
...     "observation"].dtype
torch.float32
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.envs.transforms._spec_utils import leaf_keys, with_dtype
from streamrl.envs.transforms.transform import Transform

__all__ = ["DTypeCastTransform", "DoubleToFloat"]


class DTypeCastTransform(Transform):
    """Cast entries from ``dtype_in`` to ``dtype_out`` (and actions back on the way in).

    With ``in_keys=None`` every output entry of dtype ``dtype_in`` is cast. ``in_keys_inv``
    names the inputs (actions, states) whose base env dtype is ``dtype_in``: users write
    them as ``dtype_out`` and the base env reads ``dtype_in``. With both ``in_keys`` and
    ``in_keys_inv`` left out, every action/state of dtype ``dtype_in`` is cast too.
    """

    _per_step = True

    def __init__(
        self,
        dtype_in: torch.dtype,
        dtype_out: torch.dtype,
        in_keys: Any = None,
        out_keys: Any = None,
        in_keys_inv: Any = None,
        out_keys_inv: Any = None,
    ) -> None:
        for name, dt in (("dtype_in", dtype_in), ("dtype_out", dtype_out)):
            if not isinstance(dt, torch.dtype):
                raise TypeError(f"{name} must be a torch.dtype, found {dt!r}")
        self._auto = in_keys is None
        self._auto_inv = in_keys is None and in_keys_inv is None
        if self._auto and out_keys is not None:
            raise ValueError("out_keys needs in_keys: give both or neither")
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        self.dtype_in = dtype_in
        self.dtype_out = dtype_out

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.to(self.dtype_out)

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.to(self.dtype_in)

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        if not self._auto:
            return super()._call(td)
        for key, value in list(td.items(True, True)):
            if value.dtype == self.dtype_in:
                td.set(key, value.to(self.dtype_out))
        return td

    def _transform_spec(self, spec: Any) -> Any:
        return with_dtype(spec, self.dtype_out)

    def _inv_transform_spec(self, spec: Any) -> Any:
        return with_dtype(spec, self.dtype_out)

    def _auto_map(self, spec: Any) -> Any:
        for key in leaf_keys(spec):
            if spec[key].dtype == self.dtype_in:
                spec[key] = with_dtype(spec[key], self.dtype_out)
        return spec

    def transform_observation_spec(self, spec: Any) -> Any:
        """Observation entries cast to ``dtype_out``."""
        return self._auto_map(spec) if self._auto else super().transform_observation_spec(spec)

    def transform_reward_spec(self, spec: Any) -> Any:
        """Reward entries cast to ``dtype_out``."""
        return self._auto_map(spec) if self._auto else super().transform_reward_spec(spec)

    def transform_action_spec(self, spec: Any) -> Any:
        """Actions as users write them (``dtype_out`` where the base env takes ``dtype_in``)."""
        if self._auto_inv:
            self._record_inv_keys(spec)
            return self._auto_map(spec)
        return super().transform_action_spec(spec)

    def transform_state_spec(self, spec: Any) -> Any:
        """States as users write them."""
        if self._auto_inv:
            self._record_inv_keys(spec)
            return self._auto_map(spec)
        return super().transform_state_spec(spec)

    def _record_inv_keys(self, spec: Any) -> None:
        # In automatic mode the action path casts back exactly the inputs the base env's
        # specs declare as dtype_in; they are only known once an env shows its specs.
        keys = [k for k in leaf_keys(spec) if spec[k].dtype == self.dtype_in]
        known = [k for k in self.in_keys_inv if k not in keys]
        self.in_keys_inv = [*known, *keys]
        self.out_keys_inv = list(self.in_keys_inv)

    def _inv_call(self, td: TensorDictBase) -> TensorDictBase:
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            value = td.get(out_key, None)
            if value is None:
                if self._auto_inv:
                    continue  # a state the caller did not provide: the env fills it in
                value = self._get(td, out_key)
            td.set(in_key, self._inv_apply_transform(value))
        return td

    def __repr__(self) -> str:
        keys = "all" if self._auto else repr(self.in_keys)
        return (
            f"{type(self).__name__}(dtype_in={self.dtype_in}, dtype_out={self.dtype_out}, "
            f"in_keys={keys}, in_keys_inv={self.in_keys_inv!r})"
        )


class DoubleToFloat(DTypeCastTransform):
    """Cast float64 outputs to float32 (and float32 actions back to float64 for the env)."""

    def __init__(
        self,
        in_keys: Any = None,
        out_keys: Any = None,
        in_keys_inv: Any = None,
        out_keys_inv: Any = None,
    ) -> None:
        super().__init__(torch.float64, torch.float32, in_keys, out_keys, in_keys_inv, out_keys_inv)

    def __repr__(self) -> str:
        keys = "all" if self._auto else repr(self.in_keys)
        return f"DoubleToFloat(in_keys={keys}, in_keys_inv={self.in_keys_inv!r})"
