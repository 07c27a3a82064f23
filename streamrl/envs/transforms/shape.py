"""Shape transforms: FlattenObservation, UnsqueezeTransform, SqueezeTransform and
PermuteTransform.

Dims count from the end when negative and from the first non-batch dim when non-negative,
so one transform works for any batch size (a single env, a batched env, a replay sample).

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import FlattenObservation
>>> td = TensorDict({"pixels": torch.zeros(4, 3, 8, 8)}, batch_size=[4])
>>> FlattenObservation(-3, -1, in_keys=["pixels"])(td)["pixels"].shape
torch.Size([4, 192])
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.envs.transforms._spec_utils import map_spec
from streamrl.envs.transforms.transform import ObservationTransform, Transform, keys_repr

__all__ = ["FlattenObservation", "PermuteTransform", "SqueezeTransform", "UnsqueezeTransform"]


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, found {value!r}")
    return value


def _abs_dim(dim: int, ndim: int, batch_dims: int, name: str, extra: int = 0) -> int:
    """Absolute dim of a tensor with ``ndim`` dims, ``batch_dims`` of them batch dims.

    ``extra`` widens the valid range by one for unsqueeze (which may add a dim at the end).
    """
    feat = ndim - batch_dims
    absolute = batch_dims + dim if dim >= 0 else ndim + extra + dim
    if not batch_dims <= absolute < ndim + extra or feat + extra <= 0:
        raise ValueError(
            f"{name}={dim} is out of range for a value of shape with {feat} non-batch dims "
            f"(total {ndim})"
        )
    return absolute


def _flatten_dims(first_dim: Any, last_dim: Any) -> tuple[int, int]:
    """Checked ``(first_dim, last_dim)`` of a flatten (FlattenObservation, FlattenAction)."""
    first_dim, last_dim = _int(first_dim, "first_dim"), _int(last_dim, "last_dim")
    if (first_dim < 0) == (last_dim < 0) and first_dim > last_dim:
        raise ValueError(f"first_dim must be <= last_dim, found {first_dim} > {last_dim}")
    return first_dim, last_dim


def _flatten_span(t: Any, ndim: int, batch_dims: int, key: Any) -> tuple[int, int]:
    """The absolute ``(first, last)`` dims ``t.first_dim``/``t.last_dim`` name in a value."""
    first = _abs_dim(t.first_dim, ndim, batch_dims, "first_dim")
    last = _abs_dim(t.last_dim, ndim, batch_dims, "last_dim")
    if first > last:
        raise ValueError(
            f"{type(t).__name__}: entry {key!r} with {ndim} dims: first_dim "
            f"{t.first_dim} comes after last_dim {t.last_dim}"
        )
    return first, last


def _flatten(t: Any, value: torch.Tensor, batch_dims: int, key: Any) -> torch.Tensor:
    """``value`` with the dims ``t.first_dim`` to ``t.last_dim`` flattened into one."""
    first, last = _flatten_span(t, value.ndim, batch_dims, key)
    return value.flatten(first, last)


class _BatchAware(Transform):
    """A per-key map that needs to know how many leading dims are batch dims."""

    def _map(self, value: torch.Tensor, batch_dims: int, key: Any) -> torch.Tensor:
        raise NotImplementedError

    def _inv_map(self, value: torch.Tensor, batch_dims: int, key: Any) -> torch.Tensor:
        raise NotImplementedError

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            td.set(out_key, self._map(self._get(td, in_key), td.batch_dims, in_key))
        return td

    def _inv_call(self, td: TensorDictBase) -> TensorDictBase:
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            td.set(in_key, self._inv_map(self._get(td, out_key), td.batch_dims, out_key))
        return td

    def _map_composite(self, spec: Any, src: list, dst: list, fn: Any) -> Any:
        nb = len(spec.shape)
        return self._map_specs(spec, src, dst, lambda s: map_spec(s, lambda v: fn(v, nb, None)))

    def transform_observation_spec(self, spec: Any) -> Any:
        """Observation entries reshaped."""
        return self._map_composite(spec, self.in_keys, self.out_keys, self._map)

    def transform_reward_spec(self, spec: Any) -> Any:
        """Reward entries reshaped."""
        return self._map_composite(spec, self.in_keys, self.out_keys, self._map)

    def transform_action_spec(self, spec: Any) -> Any:
        """Action entries as users see them (the inverse of the action-path reshape)."""
        return self._map_composite(spec, self.in_keys_inv, self.out_keys_inv, self._spec_inv)

    def transform_state_spec(self, spec: Any) -> Any:
        """State entries as users see them."""
        return self._map_composite(spec, self.in_keys_inv, self.out_keys_inv, self._spec_inv)

    def _spec_inv(self, value: torch.Tensor, batch_dims: int, key: Any) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no action path")


class FlattenObservation(_BatchAware, ObservationTransform):
    """Flatten dims ``first_dim`` to ``last_dim`` (inclusive) of each ``in_keys`` entry."""

    _per_step = True

    def __init__(
        self, first_dim: int, last_dim: int, in_keys: Any = None, out_keys: Any = None
    ) -> None:
        super().__init__(["observation"] if in_keys is None else in_keys, out_keys)
        self.first_dim, self.last_dim = _flatten_dims(first_dim, last_dim)

    def _map(self, value: torch.Tensor, batch_dims: int, key: Any) -> torch.Tensor:
        return _flatten(self, value, batch_dims, key)

    def __repr__(self) -> str:
        return (
            f"FlattenObservation(first_dim={self.first_dim}, last_dim={self.last_dim}, "
            f"keys={keys_repr(self.in_keys)})"
        )


class UnsqueezeTransform(_BatchAware):
    """Insert a dim of size 1 at ``dim`` in each ``in_keys`` entry.

    ``in_keys_inv`` entries (actions) are squeezed at ``dim`` on their way to the base env, so
    users write them with the extra dim.

    Args:
        dim: where the new dim goes; negative (counted from the end) unless
            ``allow_positive_dim``, which lets a non-negative ``dim`` count from the first
            non-batch dim.

    Keyword Args:
        allow_positive_dim: accept ``dim >= 0`` (default False).
        in_keys, out_keys, in_keys_inv, out_keys_inv: as in :class:`Transform`.
    """

    _per_step = True

    def __init__(
        self,
        dim: int,
        *,
        allow_positive_dim: bool = False,
        in_keys: Any = None,
        out_keys: Any = None,
        in_keys_inv: Any = None,
        out_keys_inv: Any = None,
    ) -> None:
        if in_keys is None and in_keys_inv is None:
            raise ValueError(f"{type(self).__name__} needs in_keys, in_keys_inv or both")
        dim = _int(dim, "dim")
        if dim >= 0 and not allow_positive_dim:
            raise ValueError(
                f"dim must be negative (counted from the end), found {dim}; pass "
                "allow_positive_dim=True to count from the first non-batch dim"
            )
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        self.dim = dim
        self.allow_positive_dim = bool(allow_positive_dim)

    def _map(self, value: torch.Tensor, batch_dims: int, key: Any) -> torch.Tensor:
        return value.unsqueeze(_abs_dim(self.dim, value.ndim, batch_dims, "dim", extra=1))

    def _inv_map(self, value: torch.Tensor, batch_dims: int, key: Any) -> torch.Tensor:
        d = _abs_dim(self.dim, value.ndim, batch_dims, "dim")
        if value.shape[d] != 1:
            raise ValueError(
                f"{type(self).__name__}: entry {key!r} of shape {tuple(value.shape)} should have "
                f"size 1 at dim {self.dim}"
            )
        return value.squeeze(d)

    _spec_inv = _map

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dim={self.dim}, in_keys={keys_repr(self.in_keys)}, "
            f"in_keys_inv={keys_repr(self.in_keys_inv)})"
        )


class SqueezeTransform(UnsqueezeTransform):
    """Remove the dim of size 1 at ``dim`` from each ``in_keys`` entry (the mirror of
    :class:`UnsqueezeTransform`).

    ``in_keys_inv`` entries (actions) get the dim back (unsqueezed at ``dim``) on their way to
    the base env, so users write them without it. Negative dims count from the end;
    non-negative ones (with ``allow_positive_dim=True``) from the first non-batch dim.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> t = SqueezeTransform(-1, in_keys=["x"], in_keys_inv=["action"])
    >>> td = TensorDict({"x": torch.zeros(4, 3, 1), "action": torch.zeros(4, 2)}, [4])
    >>> t(td)["x"].shape, t.inv(td)["action"].shape
    (torch.Size([4, 3]), torch.Size([4, 2, 1]))
    """

    # the mirror of UnsqueezeTransform (as in TorchRL, a subclass of it): the same arguments
    # and checks, its two maps swapped
    _map = UnsqueezeTransform._inv_map
    _inv_map = UnsqueezeTransform._map
    _spec_inv = UnsqueezeTransform._inv_map


class PermuteTransform(_BatchAware):
    """Permute the trailing (feature) dims of each ``in_keys`` entry.

    Args:
        dims: the new order of the last ``len(dims)`` dims, a reordering of
            ``[-len(dims), ..., -1]``; ``[-1, -3, -2]`` moves the last dim first (an
            ``[H, W, C]`` image becomes ``[C, H, W]``).
        in_keys, out_keys: observation-path entries (``out_keys`` defaults to ``in_keys``).
        in_keys_inv, out_keys_inv: action-path entries; users write them permuted and the base
            env reads them with the inverse permutation applied.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"pixels": torch.zeros(2, 8, 6, 3)}, [2])
    >>> PermuteTransform([-1, -3, -2], in_keys=["pixels"])(td)["pixels"].shape
    torch.Size([2, 3, 8, 6])
    """

    _per_step = True

    def __init__(
        self,
        dims: Any,
        in_keys: Any = None,
        out_keys: Any = None,
        in_keys_inv: Any = None,
        out_keys_inv: Any = None,
    ) -> None:
        if isinstance(dims, (str, bytes)) or not hasattr(dims, "__iter__"):
            raise TypeError(f"dims must be a list of ints, found {dims!r}")
        dims = [_int(d, "dims[i]") for d in dims]
        n = len(dims)
        if n == 0 or sorted(dims) != list(range(-n, 0)):
            raise ValueError(
                f"dims must be a reordering of {list(range(-n, 0))} (negative dims), found {dims}"
            )
        if in_keys is None and in_keys_inv is None:
            raise ValueError("PermuteTransform needs in_keys, in_keys_inv or both")
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        self.dims = dims
        inverse = [0] * n
        for i, d in enumerate(dims):
            inverse[d + n] = i - n
        self._inverse = inverse

    def _permute(self, value: torch.Tensor, dims: list, batch_dims: int, key: Any) -> torch.Tensor:
        n = len(dims)
        if value.ndim - batch_dims < n:
            raise ValueError(
                f"PermuteTransform: entry {key!r} of shape {tuple(value.shape)} has fewer than "
                f"{n} non-batch dims"
            )
        lead = list(range(value.ndim - n))
        return value.permute(*lead, *[value.ndim + d for d in dims])

    def _map(self, value: torch.Tensor, batch_dims: int, key: Any) -> torch.Tensor:
        return self._permute(value, self.dims, batch_dims, key)

    def _inv_map(self, value: torch.Tensor, batch_dims: int, key: Any) -> torch.Tensor:
        return self._permute(value, self._inverse, batch_dims, key)

    _spec_inv = _map

    def __repr__(self) -> str:
        return (
            f"PermuteTransform(dims={self.dims}, in_keys={keys_repr(self.in_keys)}, "
            f"in_keys_inv={keys_repr(self.in_keys_inv)})"
        )
