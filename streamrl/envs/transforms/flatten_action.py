"""FlattenAction: users (policies) see a flat action; the base env gets its original shape.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import FlattenAction
>>> t = FlattenAction(-2, -1, action_shape=(2, 3))
>>> t.inv(TensorDict({"action": torch.arange(6.0)}))["action"]
tensor([[0., 1., 2.],
        [3., 4., 5.]])
>>> t(TensorDict({"action": torch.zeros(2, 3)}))["action"].shape
torch.Size([6])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.envs.transforms.shape import (
    _abs_dim,
    _BatchAware,
    _flatten,
    _flatten_dims,
    _flatten_span,
)
from streamrl.envs.transforms.transform import keys_repr

__all__ = ["FlattenAction"]


class FlattenAction(_BatchAware):
    """Flatten dims ``first_dim`` to ``last_dim`` (inclusive) of the action: the action spec
    users see is flat, and the action path restores the original shape for the base env.

    The mirror of :class:`~streamrl.envs.transforms.FlattenObservation` (the same flatten);
    applied to plain data (``transform(td)``, e.g. a replay-buffer sample of env actions) it
    flattens ``in_keys`` into ``out_keys``; in an env the step outputs are left alone.

    Args:
        first_dim: first dim to flatten; negative unless ``allow_positive_dim``.
        last_dim: last dim to flatten (inclusive); negative unless ``allow_positive_dim``.
        in_keys_inv: the action entries as the base env reads them (unflattened).
            Default ``["action"]``.
        out_keys_inv: the flat entries users write; default ``in_keys_inv``.
        in_keys: entries flattened on plain data; default ``in_keys_inv``.
        out_keys: where they go; default ``in_keys``.
        allow_positive_dim: accept non-negative dims, counted from the first non-batch dim.

    Keyword Args:
        action_shape: the shape of the dims ``[first_dim, last_dim]`` before flattening, for
            every ``in_keys_inv`` entry. Default: read from the base env's action spec (so it
            is needed outside an env only).

    >>> from streamrl.envs.libs.gym import GymEnv
    >>> from streamrl.envs.transforms import TransformedEnv, UnsqueezeTransform, Compose
    >>> env = TransformedEnv(GymEnv("Pendulum-v1"), Compose(
    ...     UnsqueezeTransform(-1, in_keys=[], in_keys_inv=["action"]), FlattenAction(-2, -1)))
    >>> env.action_spec.shape, env.rollout(2)["action"].shape
    (torch.Size([1]), torch.Size([2, 1]))
    >>> env.close()
    """

    _per_step = True

    def __init__(
        self,
        first_dim: int = -2,
        last_dim: int = -1,
        in_keys_inv: Any = None,
        out_keys_inv: Any = None,
        in_keys: Any = None,
        out_keys: Any = None,
        allow_positive_dim: bool = False,
        *,
        action_shape: Sequence[int] | None = None,
    ) -> None:
        first_dim, last_dim = _flatten_dims(first_dim, last_dim)
        if not allow_positive_dim and (first_dim >= 0 or last_dim >= 0):
            raise ValueError(
                f"first_dim and last_dim must be negative unless allow_positive_dim=True, "
                f"found {first_dim} and {last_dim}"
            )
        in_keys_inv = ["action"] if in_keys_inv is None else in_keys_inv
        super().__init__(
            in_keys_inv if in_keys is None else in_keys, out_keys, in_keys_inv, out_keys_inv
        )
        self.first_dim, self.last_dim = first_dim, last_dim
        self.allow_positive_dim = bool(allow_positive_dim)
        if action_shape is not None:
            if isinstance(action_shape, (str, bytes)) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in action_shape
            ):
                raise TypeError(f"action_shape must be positive ints, found {action_shape!r}")
            action_shape = tuple(action_shape)
            if first_dim < 0 and last_dim < 0 and len(action_shape) != last_dim - first_dim + 1:
                raise ValueError(
                    f"action_shape {action_shape} must have {last_dim - first_dim + 1} dims "
                    f"(first_dim={first_dim} to last_dim={last_dim})"
                )
        self.action_shape = action_shape
        self._spans: dict = {}

    # ------------------------------------------------------------------ data
    def _map(self, value: torch.Tensor, batch_dims: int, key: Any) -> torch.Tensor:
        return _flatten(self, value, batch_dims, key)

    def _span(self, key: Any) -> tuple[int, ...]:
        if self.action_shape is not None:
            return self.action_shape
        if key not in self._spans:
            parent = self.parent
            if parent is None:
                raise RuntimeError(
                    f"FlattenAction: the original shape of {key!r} is unknown outside an env; "
                    "pass action_shape="
                )
            self.transform_action_spec(parent.full_action_spec.clone())
        return self._spans[key]

    def _inv_map(self, value: torch.Tensor, batch_dims: int, key: Any) -> torch.Tensor:
        env_key = self.in_keys_inv[self.out_keys_inv.index(key)]
        span = self._span(env_key)
        # once the span is one dim, it sits where last_dim (counted from the end) or
        # first_dim (counted from the first non-batch dim) points
        dim, name = (
            (self.last_dim, "last_dim") if self.last_dim < 0 else (self.first_dim, "first_dim")
        )
        d = _abs_dim(dim, value.ndim, batch_dims, name)
        if value.shape[d] != math.prod(span):
            raise ValueError(
                f"FlattenAction: entry {key!r} of shape {tuple(value.shape)} has "
                f"{value.shape[d]} values at the flat dim, expected {math.prod(span)} "
                f"(the original shape {span})"
            )
        return value.unflatten(d, span)

    def _spec_inv(self, value: torch.Tensor, batch_dims: int, key: Any) -> torch.Tensor:
        return _flatten(self, value, batch_dims, key)

    def transform_action_spec(self, spec: Any) -> Any:
        """The action entries flattened (their original spans are recorded for the inverse)."""
        nb = len(spec.shape)
        for key in self.in_keys_inv:
            if key in spec.keys(True, True):
                shape = spec[key].shape
                first, last = _flatten_span(self, len(shape), nb, key)
                self._spans[key] = tuple(shape[first : last + 1])
        return super().transform_action_spec(spec)

    # ------------------------------------------------------------------ env hooks
    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        return next_td  # the env's outputs hold no action

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        return td_reset

    def __repr__(self) -> str:
        return (
            f"FlattenAction(first_dim={self.first_dim}, last_dim={self.last_dim}, "
            f"in_keys_inv={keys_repr(self.in_keys_inv)})"
        )
