"""Numerically safe tanh squashing into ``[low, high]`` shared by TanhNormal and TanhDelta."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _eps(dtype: torch.dtype) -> float:
    # the smallest gap from +-1 the dtype resolves reliably; atanh(1 - eps) stays finite
    return torch.finfo(dtype).resolution


class _SafeTanh(torch.autograd.Function):
    """tanh clamped away from +-1, with the analytic gradient ``1 - y**2``."""

    generate_vmap_rule = True  # works under torch.vmap (ensembles, functional calls)

    @staticmethod
    def forward(value):
        eps = _eps(value.dtype)
        return value.tanh().clamp(-1 + eps, 1 - eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * (1 - out.pow(2))


class _SafeAtanh(torch.autograd.Function):
    """atanh of a value clamped inside ``(-1, 1)``, with gradient ``1 / (1 - x**2)``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(value):
        eps = _eps(value.dtype)
        return value.clamp(-1 + eps, 1 - eps).atanh()

    @staticmethod
    def setup_context(ctx, inputs, output):
        (value,) = inputs
        eps = _eps(value.dtype)
        ctx.save_for_backward(value.clamp(-1 + eps, 1 - eps))

    @staticmethod
    def backward(ctx, grad):
        (value,) = ctx.saved_tensors
        return grad / (1 - value.pow(2))


def safe_tanh(value: torch.Tensor) -> torch.Tensor:
    return _SafeTanh.apply(value)


def safe_atanh(value: torch.Tensor) -> torch.Tensor:
    return _SafeAtanh.apply(value)


def log_abs_det_tanh(pre_tanh: torch.Tensor) -> torch.Tensor:
    """``log(1 - tanh(u)**2)`` computed without cancellation for large ``|u|``."""
    return 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))


def as_bound(value, like: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        return torch.full((), float(value), dtype=like.dtype, device=like.device)
    return value.to(device=like.device, dtype=like.dtype)


def _inspectable(t: torch.Tensor) -> bool:
    # reading values of a CUDA tensor would sync the device; a vmapped one cannot be read
    return t.device.type == "cpu" and not torch._C._functorch.is_batchedtensor(t)


def check_bounds(low: torch.Tensor, high: torch.Tensor, owner: str) -> None:
    if not (_inspectable(low) and _inspectable(high)):
        return
    if (low >= high).any():
        raise ValueError(
            f"{owner} needs low < high everywhere, got low={low.tolist()} high={high.tolist()}"
        )


def prepare_bounds(low, high, like: torch.Tensor, owner: str):
    """``(low, high, unit)`` as tensors on ``like``'s device/dtype; ``unit`` is True for
    ``[-1, 1]`` (the affine rescaling is then skipped). Checks ``low < high`` without
    synchronising an accelerator."""
    if not isinstance(low, torch.Tensor) and not isinstance(high, torch.Tensor):
        if not float(low) < float(high):
            raise ValueError(f"{owner} needs low < high, got low={low} high={high}")
        unit = float(low) == -1.0 and float(high) == 1.0
        return as_bound(low, like, "low"), as_bound(high, like, "high"), unit
    key = None
    if isinstance(low, torch.Tensor) and isinstance(high, torch.Tensor):
        # an actor builds its distribution with the same bound tensors at every call: the
        # checks (values read back) run once per bound tensors, device, dtype and version
        key = (id(low), id(high), low._version, high._version, like.device, like.dtype)
        hit = _CHECKED.get(key)
        if hit is not None and hit[0] is low and hit[1] is high:
            return hit[2]
    low_t, high_t = as_bound(low, like, "low"), as_bound(high, like, "high")
    check_bounds(low_t, high_t, owner)
    unit = (
        _inspectable(low_t)
        and _inspectable(high_t)
        and bool((low_t == -1).all() and (high_t == 1).all())
    )
    if key is not None and _inspectable(low_t) and _inspectable(high_t):
        if len(_CHECKED) >= 64:
            _CHECKED.clear()
        _CHECKED[key] = (low, high, (low_t, high_t, unit))  # holds them: ids stay theirs
    return low_t, high_t, unit


# prepare_bounds's checked bounds: key -> (low, high, result)
_CHECKED: dict[tuple, tuple] = {}
