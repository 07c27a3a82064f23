"""Split a network output into a Gaussian's ``loc`` and a positive ``scale``."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AddStateIndependentNormalScale",
    "NormalParamExtractor",
    "biased_softplus",
    "scale_mapping",
]


class biased_softplus(nn.Module):
    """``softplus(x + b) + min_val`` with ``b`` chosen so that ``x = 0`` maps to ``bias``.

    >>> biased_softplus(1.0)(torch.zeros(1))
    tensor([1.])
    """

    def __init__(self, bias: float, min_val: float = 0.0) -> None:
        super().__init__()
        if bias <= min_val:
            raise ValueError(f"biased_softplus needs bias > min_val, got {bias} <= {min_val}")
        target = bias - min_val
        # inverse softplus of the target, stable for large targets
        self.shift = target + math.log(-math.expm1(-target))
        self.min_val = min_val

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return F.softplus(value + self.shift) + self.min_val

    def extra_repr(self) -> str:
        return f"shift={self.shift:.4f}, min_val={self.min_val}"


def _expln(value: torch.Tensor) -> torch.Tensor:
    # exp below 0, log1p above: positive, smooth, grows slowly (gSDE's choice)
    return torch.where(value <= 0, value.clamp(max=0).exp(), value.clamp(min=0).log1p() + 1)


def scale_mapping(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return the positive mapping named ``name``.

    Names: ``"biased_softplus_<bias>"`` (``x = 0`` maps to ``bias``), ``"softplus"``, ``"exp"``,
    ``"expln"``, ``"relu"``, ``"abs"``, ``"none"`` (identity).

    >>> scale_mapping("biased_softplus_1.0")(torch.zeros(2))
    tensor([1., 1.])
    """
    if name.startswith("biased_softplus"):
        parts = name.split("_")
        bias = float(parts[2]) if len(parts) > 2 else 1.0
        min_val = float(parts[3]) if len(parts) > 3 else 0.0
        return biased_softplus(bias, min_val)
    table: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "softplus": F.softplus,
        "exp": torch.exp,
        "expln": _expln,
        "relu": torch.relu,
        "abs": torch.abs,
        "none": lambda x: x,
    }
    if name not in table:
        raise ValueError(
            f"unknown scale mapping {name!r}; expected one of {[*table, 'biased_softplus_<b>']}"
        )
    return table[name]


class NormalParamExtractor(nn.Module):
    """Split the last dim in two halves: ``loc`` and ``scale = max(mapping(x), scale_lb)``.

    Args:
        scale_mapping: name of the positive mapping (see :func:`scale_mapping`), default
            ``"biased_softplus_1.0"``: a zero pre-activation gives ``scale == 1``.
        scale_lb: lower bound of the scale, keeps log-probs finite.

    >>> loc, scale = NormalParamExtractor()(torch.zeros(3, 4))
    >>> loc.shape, scale.shape, scale[0, 0].item()
    (torch.Size([3, 2]), torch.Size([3, 2]), 1.0)
    """

    def __init__(self, scale_mapping: str = "biased_softplus_1.0", scale_lb: float = 1e-4):
        super().__init__()
        self.scale_mapping_name = scale_mapping
        self.mapping = globals()["scale_mapping"](scale_mapping)
        if scale_lb < 0:
            raise ValueError(f"scale_lb must be >= 0, got {scale_lb}")
        self.scale_lb = scale_lb

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(tensors) == 1:
            (value,) = tensors
            if value.shape[-1] % 2:
                raise ValueError(
                    "NormalParamExtractor splits the last dim in two equal halves (loc, scale); "
                    f"got shape {tuple(value.shape)} with an odd last dim"
                )
            loc, raw_scale = value.chunk(2, -1)
        elif len(tensors) == 2:
            loc, raw_scale = tensors
        else:
            raise TypeError(f"NormalParamExtractor takes 1 or 2 tensors, got {len(tensors)}")
        return loc, self.mapping(raw_scale).clamp_min(self.scale_lb)


class AddStateIndependentNormalScale(nn.Module):
    """Return ``(loc, scale)`` where ``scale`` is a learned parameter, not a function of the state.

    The usual PPO parametrisation for continuous control: the network outputs ``loc`` only;
    ``scale = max(mapping(p), scale_lb)`` with ``p`` a parameter of shape ``scale_shape``
    initialised so that the initial scale is ``init_scale`` (``p = log(init_scale)`` for
    ``"exp"``).

    >>> module = AddStateIndependentNormalScale(2, scale_mapping="exp", init_scale=0.5)
    >>> loc, scale = module(torch.zeros(4, 2))
    >>> scale.shape, round(scale[0, 0].item(), 4)
    (torch.Size([4, 2]), 0.5)
    """

    def __init__(
        self,
        scale_shape: int | tuple[int, ...],
        scale_mapping: str = "exp",
        scale_lb: float = 1e-4,
        init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        shape = (scale_shape,) if isinstance(scale_shape, int) else tuple(scale_shape)
        if init_scale <= scale_lb:
            raise ValueError(f"init_scale must exceed scale_lb, got {init_scale} <= {scale_lb}")
        self.mapping = globals()["scale_mapping"](scale_mapping)
        self.scale_lb = scale_lb
        init = _inverse_mapping(self.mapping, scale_mapping, init_scale)
        self.scale = nn.Parameter(torch.full(shape, init))

    def forward(self, loc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.scale.ndim
        if tuple(loc.shape[loc.ndim - n :]) != tuple(self.scale.shape):
            raise ValueError(
                f"loc of shape {tuple(loc.shape)} does not end with the scale's shape "
                f"{tuple(self.scale.shape)}"
            )
        scale = self.mapping(self.scale).clamp_min(self.scale_lb)
        return loc, scale.expand_as(loc)


def _inv_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


def _inverse_mapping(mapping, name: str, value: float) -> float:
    """The pre-activation that ``mapping`` sends to ``value``."""
    if isinstance(mapping, biased_softplus):
        return _inv_softplus(value - mapping.min_val) - mapping.shift
    if name == "exp":
        return math.log(value)
    if name == "softplus":
        return _inv_softplus(value)
    if name in ("none", "relu", "abs"):
        return value
    raise ValueError(f"AddStateIndependentNormalScale does not support mapping {name!r}")
