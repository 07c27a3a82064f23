"""TorchRL's ``torchrl.modules.utils`` path: the primer helpers and the positive mappings of
:mod:`streamrl.modules`, importable from where TorchRL users import them.

>>> import torch
>>> from streamrl.modules.utils import get_primers_from_module, mappings
>>> mappings("biased_softplus_1.0")(torch.zeros(1))
tensor([1.])
"""

from __future__ import annotations

import math

import torch

from streamrl.modules.distributions import biased_softplus, scale_mapping
from streamrl.modules.primers import get_env_transforms_from_module, get_primers_from_module

__all__ = [
    "biased_softplus",
    "get_env_transforms_from_module",
    "get_primers_from_module",
    "inv_softplus",
    "mappings",
]

mappings = scale_mapping


def inv_softplus(bias: float | torch.Tensor) -> float | torch.Tensor:
    """The pre-activation ``x`` with ``softplus(x) == bias`` (``bias > 0``).

    >>> round(inv_softplus(1.0), 4)
    0.5413
    """
    if isinstance(bias, torch.Tensor):
        return bias.expm1().log()
    if bias <= 0:
        raise ValueError(f"inv_softplus needs bias > 0, found {bias}")
    return math.log(math.expm1(bias))
