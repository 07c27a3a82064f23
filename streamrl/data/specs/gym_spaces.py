"""Conversion from gymnasium spaces to specs."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from streamrl.data.specs._base import TensorSpec, _torch_dtype
from streamrl.data.specs.bounded import Bounded
from streamrl.data.specs.composite import Composite
from streamrl.data.specs.discrete import Binary, Categorical, OneHot
from streamrl.data.specs.multi import MultiCategorical, MultiOneHot
from streamrl.data.specs.unbounded import Unbounded

__all__ = ["spec_from_gym_space"]


def spec_from_gym_space(
    space: Any, categorical_action_encoding: bool = False, device: Any = None
) -> TensorSpec | Composite:
    """Convert a gymnasium space to a spec.

    Box -> :class:`Bounded` (:class:`Unbounded` when every bound is infinite); Discrete ->
    :class:`OneHot` (or :class:`Categorical` when ``categorical_action_encoding`` is True);
    MultiDiscrete -> :class:`MultiOneHot` (or :class:`MultiCategorical`); MultiBinary ->
    :class:`Binary`; Dict -> :class:`Composite`; Tuple -> :class:`Composite` with keys
    ``"0"``, ``"1"``, ... A Discrete/MultiDiscrete ``start`` offset is not represented: the
    spec counts from 0 (:class:`~streamrl.envs.libs.gym.GymWrapper` adds the offset back).

    >>> import gymnasium as gym
    >>> spec_from_gym_space(gym.spaces.Discrete(3)).shape
    torch.Size([3])
    >>> spec_from_gym_space(gym.spaces.Discrete(3), categorical_action_encoding=True)
    Categorical(
        shape=torch.Size([]),
        space=DiscreteBox(n=3),
        device=cpu,
        dtype=torch.int64,
        domain=discrete)
    """
    from gymnasium import spaces

    enc = categorical_action_encoding
    if isinstance(space, spaces.Box):
        low, high = np.asarray(space.low), np.asarray(space.high)
        dtype = _torch_dtype(space.dtype)
        if np.isinf(low).all() and np.isinf(high).all():
            return Unbounded(space.shape, device, dtype)
        return Bounded(low, high, space.shape, device, dtype)
    if isinstance(space, spaces.Discrete):
        if enc:
            return Categorical(int(space.n), device=device)
        return OneHot(int(space.n), device=device, dtype=torch.int64)
    if isinstance(space, spaces.MultiDiscrete):
        nvec = np.asarray(space.nvec)
        if enc or nvec.ndim != 1:
            return MultiCategorical(nvec, device=device)
        return MultiOneHot([int(n) for n in nvec], device=device, dtype=torch.int64)
    if isinstance(space, spaces.MultiBinary):
        shape = (space.n,) if isinstance(space.n, int | np.integer) else tuple(space.n)
        return Binary(shape=shape, device=device)
    if isinstance(space, spaces.Dict):
        return Composite(
            {k: spec_from_gym_space(v, enc, device) for k, v in space.spaces.items()},
            device=device,
        )
    if isinstance(space, spaces.Tuple):
        return Composite(
            {str(i): spec_from_gym_space(v, enc, device) for i, v in enumerate(space.spaces)},
            device=device,
        )
    raise TypeError(
        f"cannot convert gymnasium space {type(space).__name__} to a spec; supported: "
        "Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple"
    )
