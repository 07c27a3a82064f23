"""Cheaper stand-ins for the call of a few common ``nn.Module``\\ s, for policy plans.

A policy stepping one env calls its networks at every step on tensors of a few elements,
where the cost is the calls, not the maths: an ``nn.Sequential`` adds a module call and a
loop around its children's calls, and tensordict's ``NormalParamExtractor`` spends more on
its two module calls and on wrapping its Python-float constants in tensors (each op with a
float operand does that first) than on the four ops it runs. :func:`direct_call` gives a
callable that computes exactly what calling the module computes (the same ops on the same
values, bit for bit, with the same gradients), without that overhead.

A stand-in only runs while nothing would see the difference: when a hook is registered on
one of the modules it skips (or for every module), when the module was compiled, or while
tracing, it calls the module itself.

>>> import torch
>>> from tensordict.nn.distributions import NormalParamExtractor
>>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), NormalParamExtractor())
>>> x = torch.randn(2, 3)
>>> fast = direct_call(net)
>>> all(torch.equal(a, b) for a, b in zip(fast(x), net(x)))
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules import module as _nn_module


def direct_call(module: nn.Module) -> Callable[..., Any]:
    """A callable equal to ``module(*args)`` (see the module docstring): a stand-in for a
    plain ``nn.Sequential`` (its children's calls in a row, each child's own stand-in, a
    ``Linear``, ``ReLU`` or ``Tanh`` child's op called directly), a module that gives its
    own (a ``_direct_call()`` method, e.g. streamrl's ``MLP``: see
    :func:`sequential_stand_in`) or a tensordict ``NormalParamExtractor`` with a
    softplus-type scale mapping; ``module`` itself for anything else."""
    if type(module) is nn.Sequential and len(module):
        return _Sequential(module)
    own = getattr(module, "_direct_call", None)
    if own is not None:
        return own()
    params = _NormalParams.of(module)
    return module if params is None else params


def sequential_stand_in(module: nn.Sequential, forward: Callable[..., Any],
                        prepare: Callable[..., torch.Tensor | None]) -> Callable[..., Any]:
    """The stand-in of an ``nn.Sequential`` subclass whose ``forward`` (the function
    ``forward``) turns its arguments into one input, ``prepare(*args)`` (``None`` where its
    checks would not pass), then computes what ``nn.Sequential``'s does: its children's
    calls in a row. A call ``prepare`` refuses, or one while the module's class has another
    ``forward`` (a subclass's own, or a replaced one), is the module's own."""
    return _Sequential(module, prepare, forward)


def _leaf(child: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The op a ``Linear``, ``ReLU`` or ``Tanh`` (their own classes, not subclasses) runs in
    its ``forward``, reading the module's attributes at each call (swapped parameters are
    seen); None for other modules."""
    kind = type(child)
    if kind is nn.Linear:
        return lambda x: F.linear(x, child.weight, child.bias)
    if kind is nn.ReLU:
        return lambda x: F.relu(x, child.inplace)
    if kind is nn.Tanh:
        return torch.tanh
    return None


def _hooked(modules: tuple[nn.Module, ...]) -> bool:
    """Whether a call of one of ``modules`` does more than its ``forward``: a hook on it or
    on every module, a compiled module, or a trace being recorded."""
    if (_nn_module._global_forward_hooks or _nn_module._global_forward_pre_hooks
            or _nn_module._global_backward_hooks or _nn_module._global_backward_pre_hooks
            or torch._C._get_tracing_state()):
        return True
    for m in modules:
        if (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                or m._backward_pre_hooks or m._compiled_call_impl is not None
                or type(m).__call__ is not nn.Module.__call__):
            return True
    return False


class _Sequential:
    """``nn.Sequential``'s call: each child's call (or its stand-in) on the output of the
    one before."""

    def __init__(self, module: nn.Sequential,
                 prepare: Callable[..., torch.Tensor | None] | None = None,
                 forward: Callable[..., Any] = nn.Sequential.forward) -> None:
        self.module = module
        self.children = list(module)
        leaves = [_leaf(child) for child in self.children]
        self.calls = [leaf or direct_call(child) for leaf, child in zip(leaves, self.children)]
        # the module and the children whose calls are skipped: their hooks send every call
        # to the module itself
        self.skipped = (module, *(c for c, leaf in zip(self.children, leaves) if leaf))
        self.forward = forward
        self.prepare = prepare

    def __call__(self, *args: Any) -> Any:
        module = self.module
        if (_hooked(self.skipped) or list(module._modules.values()) != self.children
                or type(module).forward is not self.forward):
            return module(*args)
        if self.prepare is not None:
            value = self.prepare(*args)
        else:
            value = args[0] if len(args) == 1 else None
        if value is None:
            return module(*args)
        for call in self.calls:
            value = call(value)
        return value


class _NormalParams:
    """tensordict's ``NormalParamExtractor`` call, ``loc, scale = x.chunk(2, -1)`` and
    ``scale = mapping(scale).clamp_min(scale_lb)``, for the mappings ``softplus`` and
    ``biased_softplus`` (``softplus(x + bias) + min_val``): the same ops with the constants
    held as 0-d tensors of the input's dtype (one cache entry per dtype and device), which
    give the same values as the Python floats."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.mapping = module.scale_mapping
        # (a plain softplus mapping is a function: no hooks of its own)
        self.skipped = (module, *(m for m in (self.mapping,) if isinstance(m, nn.Module)))
        self._consts: dict[tuple, tuple] = {}

    @classmethod
    def of(cls, module: nn.Module) -> _NormalParams | None:
        try:
            from tensordict.nn.distributions import NormalParamExtractor
            from tensordict.nn.utils import biased_softplus
        except ImportError:  # pragma: no cover - another tensordict
            return None
        if type(module) is not NormalParamExtractor or type(
                module).forward is not NormalParamExtractor.forward:
            return None
        mapping = module.scale_mapping
        if mapping is torch.nn.functional.softplus or (
                type(mapping) is biased_softplus
                and type(mapping).forward is biased_softplus.forward):
            return cls(module)
        return None

    def _constants(self, value: torch.Tensor) -> tuple | None:
        """``(bias, min_val, scale_lb)`` as 0-d tensors like ``value`` (``bias`` and
        ``min_val`` None for a plain softplus), or None where the tensors would not give
        the floats' values (a low-precision dtype: its ops compute in float32 with the
        float unrounded) or a constant is not a float."""
        m: Any = self.mapping
        plain = m is torch.nn.functional.softplus
        floats = (None, None) if plain else (m.bias, m.min_val)
        key = (value.dtype, value.device, *floats, self.module.scale_lb)
        found = self._consts.get(key)
        if found is None:
            if value.dtype not in (torch.float32, torch.float64) or not all(
                    v is None or type(v) in (int, float) for v in key[2:]):
                return None

            def full(v: float | None) -> torch.Tensor | None:
                return None if v is None else torch.tensor(v, dtype=value.dtype,
                                                           device=value.device)

            found = self._consts[key] = tuple(full(v) for v in key[2:])
        return found

    def __call__(self, *args: Any) -> Any:
        module = self.module
        if (len(args) != 1 or type(args[0]) is not torch.Tensor
                or module.scale_mapping is not self.mapping or _hooked(self.skipped)):
            return module(*args)
        loc, scale = args[0].chunk(2, -1)
        consts = self._constants(scale)
        if consts is None:
            return module(*args)
        bias, min_val, lb = consts
        if bias is None:
            scale = torch.nn.functional.softplus(scale)
        else:
            scale = torch.nn.functional.softplus(scale + bias) + min_val
        return loc, scale.clamp_min(lb)
