"""Pieces the layer-stack builders (MLP, ConvNet) share: per-layer keyword arguments and the
normalisation layer after each hidden layer."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

# the arguments that give a norm layer its size (BatchNorm, LayerNorm, GroupNorm, ...)
_SIZE_ARGS = ("num_features", "normalized_shape", "num_channels")


def per_layer_kwargs(name: str, kwargs: dict | Sequence[dict] | None, n: int) -> list[dict]:
    """One dict for each of ``n`` layers, from one dict (shared) or a list of ``n`` dicts."""
    if kwargs is None or isinstance(kwargs, dict):
        return [dict(kwargs or {}) for _ in range(n)]
    kwargs = list(kwargs)
    if len(kwargs) != n or not all(isinstance(k, dict) for k in kwargs):
        raise ValueError(f"{name} must be a dict or a list of {n} dicts, got {kwargs!r}")
    return kwargs


def norm_layer(norm_class: type[nn.Module], width: int, kwargs: dict) -> nn.Module:
    """``norm_class`` for a layer of ``width`` features: built from ``kwargs`` alone when they
    give the size (TorchRL's way: ``norm_kwargs={"num_features": 32}``) or the class is lazy
    (``nn.LazyBatchNorm1d``), else with ``width`` as its first argument."""
    if (isinstance(norm_class, type) and issubclass(norm_class, LazyModuleMixin)) or any(
            k in kwargs for k in _SIZE_ARGS):
        return norm_class(**kwargs)
    return norm_class(width, **kwargs)


class _Call(nn.Module):
    """A plain callable (e.g. ``lambda x: x + 1``) as a layer of a module stack."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, value):
        return self.fn(value)

    def extra_repr(self) -> str:
        return getattr(self.fn, "__name__", repr(self.fn))


def as_layer(obj) -> nn.Module:
    """``obj`` when it is a module, else a module calling it (TorchRL lets
    ``activation_class`` be any callable factory, such as one returning a lambda)."""
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise TypeError(f"a layer must be an nn.Module or a callable, found {type(obj).__name__}")
    return _Call(obj)
