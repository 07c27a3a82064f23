"""Numerically safe tanh squashing into ``[low, high]`` shared by TanhNormal and TanhDelta."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

_TWO_LOG_2 = 2.0 * math.log(2.0)


def _eps(dtype: torch.dtype) -> float:
    # the smallest gap from +-1 the dtype resolves reliably; atanh(1 - eps) stays finite
    return torch.finfo(dtype).resolution


class _SafeTanh(torch.autograd.Function):
    """tanh clamped away from +-1, with the analytic gradient ``1 - y**2`` (TorchRL's, and
    its ``grad_fn`` name, which the tutorial prints). Written in the ``forward(ctx, ...)``
    style: ``apply`` then skips the signature binding that costs the ``setup_context`` style
    ~10 us a call; functorch transforms, which need that style, take the plain-ops path of
    :func:`safe_tanh` instead."""

    @staticmethod
    def forward(ctx, value):
        eps = _eps(value.dtype)
        out = value.tanh().clamp(-1 + eps, 1 - eps)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * (1 - out.pow(2))


class _SafeAtanh(torch.autograd.Function):
    """atanh of a value clamped inside ``(-1, 1)``, with gradient ``1 / (1 - x**2)``."""

    @staticmethod
    def forward(ctx, value):
        eps = _eps(value.dtype)
        clamped = value.clamp(-1 + eps, 1 - eps)
        ctx.save_for_backward(clamped)
        return clamped.atanh()

    @staticmethod
    def backward(ctx, grad):
        (clamped,) = ctx.saved_tensors
        return grad / (1 - clamped.pow(2))


def _with_slope(out: torch.Tensor, value: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """``out`` (computed from ``value`` without gradient) whose gradient with respect to
    ``value`` is ``slope``: ``out + (value - value.detach()) * slope``, the second term zero
    (a non-finite ``value`` gives zero too, not NaN). Plain differentiable ops, for functorch
    transforms (vmap, torch.func.grad)."""
    return out + torch.nan_to_num(value - value.detach(), nan=0.0) * slope.detach()


def _direct(value: torch.Tensor) -> bool:
    """Whether the autograd Function may run on ``value``: gradients are on and ``value``
    is not inside a functorch transform."""
    return torch.is_grad_enabled() and not torch._C._functorch.is_functorch_wrapped_tensor(value)


def safe_tanh(value: torch.Tensor) -> torch.Tensor:
    """tanh clamped away from +-1, with the analytic gradient ``1 - y**2`` of the clamped
    output ``y`` (a saturated value keeps a small gradient instead of none)."""
    if _direct(value):
        return _SafeTanh.apply(value)
    eps = _eps(value.dtype)
    out = value.detach().tanh().clamp(-1 + eps, 1 - eps)
    if not torch.is_grad_enabled():
        return out
    return _with_slope(out, value, 1 - out.pow(2))


def safe_atanh(value: torch.Tensor) -> torch.Tensor:
    """atanh of ``value`` clamped inside ``(-1, 1)``, with gradient ``1 / (1 - x**2)`` of the
    clamped ``x``."""
    if _direct(value):
        return _SafeAtanh.apply(value)
    eps = _eps(value.dtype)
    clamped = value.detach().clamp(-1 + eps, 1 - eps)
    if not torch.is_grad_enabled():
        return clamped.atanh()
    return _with_slope(clamped.atanh(), value, 1 / (1 - clamped.pow(2)))


def tanh_log_det_term(pre_tanh: torch.Tensor,
                      neg_two: torch.Tensor | float = -2.0) -> torch.Tensor:
    """``s = u + softplus(-2u)``, with ``log(1 - tanh(u)**2) = 2 log 2 - 2 s`` (no cancellation
    for large ``|u|``). ``neg_two``: ``-2``, as a 0-d tensor where a caller keeps one (an op
    with a float operand wraps it in a new tensor first)."""
    return F.softplus(pre_tanh * neg_two).add_(pre_tanh)


def log_abs_det_tanh(pre_tanh: torch.Tensor) -> torch.Tensor:
    """``log(1 - tanh(u)**2)`` computed without cancellation for large ``|u|``:
    ``2 (log 2 - u - softplus(-2u))`` (in place only on intermediates no backward reads)."""
    return tanh_log_det_term(pre_tanh).mul_(-2.0).add_(_TWO_LOG_2)


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
    if isinstance(low, torch.Tensor) and isinstance(high, torch.Tensor):
        # an actor builds its distribution with the same bound tensors at every call: the
        # checks (values read back) run once per bound tensors, device, dtype and version
        return _per_bounds(_CHECKED, low, high, (like.device, like.dtype),
                           lambda: _checked_bounds(low, high, like, owner))
    return _checked_bounds(low, high, like, owner)


def _checked_bounds(low, high, like: torch.Tensor, owner: str):
    low_t, high_t = as_bound(low, like, "low"), as_bound(high, like, "high")
    check_bounds(low_t, high_t, owner)
    unit = (
        _inspectable(low_t)
        and _inspectable(high_t)
        and bool((low_t == -1).all() and (high_t == 1).all())
    )
    return low_t, high_t, unit


def half_range(low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``((high - low) / 2, log((high - low) / 2))``, computed once per pair of bound tensors
    (and their versions): a squashed distribution rescales with them at every call."""

    def compute() -> tuple[torch.Tensor, torch.Tensor]:
        half = (high - low) / 2
        return half, torch.log(half)

    return _per_bounds(_HALVES, low, high, (), compute)


# what _per_bounds keeps: key -> (low, high, result)
_CHECKED: dict[tuple, tuple] = {}
_HALVES: dict[tuple, tuple] = {}


def _per_bounds(cache: dict, low: torch.Tensor, high: torch.Tensor, extra: tuple,
                compute: Any) -> Any:
    """``compute()``, kept in ``cache`` for these bound tensors (the same objects, at the
    same versions) and ``extra``. Bounds that need gradients, or whose values cannot be read
    without synchronising a device (or at all, under vmap), are not kept; the cache holds the
    tensors themselves, so their ids stay theirs, and at most 64 entries."""
    key = (id(low), id(high), low._version, high._version, *extra)
    hit = cache.get(key)
    if hit is not None and hit[0] is low and hit[1] is high:
        return hit[2]
    result = compute()
    if (_inspectable(low) and _inspectable(high)
            and not (low.requires_grad or high.requires_grad)):
        if len(cache) >= 64:
            cache.clear()
        cache[key] = (low, high, result)
    return result
