"""Elementwise value maps: ClipTransform (clamp into a range) and SignTransform (the sign).

Both work on the observation path (``in_keys`` -> ``out_keys``) and on the action path
(``out_keys_inv``, as users write it, -> ``in_keys_inv``, as the base env reads it).

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import ClipTransform, SignTransform
>>> td = TensorDict({"x": torch.tensor([-3.0, 0.0, 0.5])})
>>> ClipTransform(in_keys=["x"], out_keys=["c"], low=-1, high=0.1)(td)["c"]
tensor([-1.0000,  0.0000,  0.1000])
>>> SignTransform(in_keys=["x"])(td)["x"]
tensor([-1.,  0.,  1.])
"""

from __future__ import annotations

import math
from typing import Any

import torch

from streamrl.data.specs import Bounded
from streamrl.envs.transforms._spec_utils import map_spec
from streamrl.envs.transforms.transform import Transform

__all__ = ["ClipTransform", "SignTransform"]


def _bound(x: Any, name: str) -> float | None:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise TypeError(
                f"low and high must be scalars or None, found {name} a tensor of shape "
                f"{tuple(x.shape)}"
            )
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"{name} must be a number, found {type(x).__name__}")
    return float(x)


class ClipTransform(Transform):
    """Clamp values into ``[low, high]``: observations or rewards (``in_keys``) and actions or
    states (``in_keys_inv``). One range per transform; chain several for several ranges.

    Args:
        in_keys, out_keys: observation-path entries read and written (``out_keys`` defaults
            to ``in_keys``).
        in_keys_inv, out_keys_inv: action-path entries; the base env reads the clipped
            ``in_keys_inv``, users write ``out_keys_inv`` (defaults to ``in_keys_inv``).

    Keyword Args:
        low, high: the bounds (scalars); either may be None, not both.

    The spec of a clipped entry is the clipped range (intersected with a Bounded spec's own
    bounds); an unbounded entry clipped on one side only keeps its spec.

    >>> from streamrl.envs.libs.gym import GymEnv
    >>> from streamrl.envs.transforms import TransformedEnv
    >>> env = TransformedEnv(GymEnv("Pendulum-v1"), ClipTransform(["observation"], low=-1, high=0.1))
    >>> bool((env.rollout(5)["observation"] <= 0.1).all())
    True
    >>> env.close()
    """

    _per_step = True

    def __init__(
        self,
        in_keys: Any = None,
        out_keys: Any = None,
        in_keys_inv: Any = None,
        out_keys_inv: Any = None,
        *,
        low: Any = None,
        high: Any = None,
    ) -> None:
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        self.low = _bound(low, "low")
        self.high = _bound(high, "high")
        if self.low is None and self.high is None:
            raise TypeError(
                "Either one or both of `high` and `low` must be provided to ClipTransform; "
                "found neither"
            )
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError(
                f"`low` must be strictly lower than `high`, found low={self.low} and "
                f"high={self.high}"
            )

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.clamp(self.low, self.high)

    _inv_apply_transform = _apply_transform

    def _transform_spec(self, spec: Any) -> Any:
        if isinstance(spec, Bounded):
            return map_spec(spec, self._apply_transform)
        if self.low is None or self.high is None or not spec.dtype.is_floating_point:
            return spec
        return Bounded(self.low, self.high, shape=spec.shape, device=spec.device, dtype=spec.dtype)

    _inv_transform_spec = _transform_spec

    def __repr__(self) -> str:
        low = -math.inf if self.low is None else self.low
        high = math.inf if self.high is None else self.high
        return (
            f"ClipTransform(low={low}, high={high}, in_keys={self.in_keys!r}, "
            f"in_keys_inv={self.in_keys_inv!r})"
        )


class SignTransform(Transform):
    """Replace values by their sign (-1, 0 or 1, same dtype): observations or rewards
    (``in_keys``) and actions or states (``in_keys_inv``).

    Args:
        in_keys, out_keys: observation-path entries read and written.
        in_keys_inv, out_keys_inv: action-path entries; the base env reads the sign of what
            users write in ``out_keys_inv``.

    On the observation path the spec becomes Bounded in [-1, 1]; on the action path the spec
    users see is the base env's one.

    >>> from streamrl.envs.libs.gym import GymEnv
    >>> from streamrl.envs.transforms import TransformedEnv
    >>> env = TransformedEnv(GymEnv("Pendulum-v1"), SignTransform(in_keys=["observation"]))
    >>> sorted(env.rollout(5)["observation"].unique().tolist()) in ([-1.0, 1.0], [-1.0], [1.0])
    True
    >>> env.close()
    """

    _per_step = True

    def __init__(
        self,
        in_keys: Any = None,
        out_keys: Any = None,
        in_keys_inv: Any = None,
        out_keys_inv: Any = None,
    ) -> None:
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return torch.sign(value)

    _inv_apply_transform = _apply_transform

    def _transform_spec(self, spec: Any) -> Any:
        if spec.dtype == torch.bool:
            return spec
        return Bounded(-1, 1, shape=spec.shape, device=spec.device, dtype=spec.dtype)

    def __repr__(self) -> str:
        return f"SignTransform(in_keys={self.in_keys!r}, in_keys_inv={self.in_keys_inv!r})"
