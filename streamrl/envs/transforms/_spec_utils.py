"""Spec helpers shared by the transforms: the spec of ``fn(value)`` for values of a spec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from streamrl.data.specs import Bounded, Categorical, Unbounded

OUTPUT_PARTS = ("full_observation_spec", "full_reward_spec", "full_done_spec")
INPUT_PARTS = ("full_action_spec", "full_state_spec")


def map_spec(spec: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """The spec of ``fn(x)`` for ``x`` in ``spec``.

    Bounds of a :class:`Bounded` spec go through ``fn`` (exact for monotone elementwise maps,
    reshapes, crops and convex combinations such as resizing or grayscale); other specs keep
    their class where only the dtype changes and become :class:`Unbounded` otherwise.
    """
    if isinstance(spec, Bounded):
        low, high = fn(spec.low), fn(spec.high)
        lo, hi = torch.minimum(low, high), torch.maximum(low, high)
        return Bounded(lo, hi, shape=lo.shape, device=spec.device, dtype=lo.dtype)
    probe = fn(spec.zero())
    if probe.shape == spec.shape and not isinstance(spec, Unbounded):
        out = spec.clone()
        out.dtype = probe.dtype
        return out
    return Unbounded(shape=probe.shape, device=spec.device, dtype=probe.dtype)


def with_dtype(spec: Any, dtype: torch.dtype) -> Any:
    """A copy of ``spec`` whose values have ``dtype`` (bounds cast too)."""
    return map_spec(spec, lambda t: t.to(dtype))


def flag_spec(batch_shape: torch.Size, device: Any) -> Any:
    """A boolean flag with a trailing dim of 1, like ``done``."""
    return Categorical(2, shape=(*batch_shape, 1), device=device, dtype=torch.bool)


def leaf_keys(composite: Any) -> list:
    """Every leaf key of a Composite spec."""
    return list(composite.keys(True, True))
