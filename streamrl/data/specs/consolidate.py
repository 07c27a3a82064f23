"""Exclusive keys of lazily stacked Composites (keys some stacked specs hold and others do
not): finding them and filling them with empty (0-sized) specs."""

from __future__ import annotations

from typing import Any

from streamrl.data.specs._base import TensorSpec
from streamrl.data.specs.composite import Composite
from streamrl.data.specs.stacked import Stacked, StackedComposite, stack_specs
from streamrl.data.specs.unbounded import Unbounded

__all__ = ["check_no_exclusive_keys", "consolidate_spec"]

_COMPOSITES = (Composite, StackedComposite)


def _aligned(specs: list, recurse: bool) -> bool:
    """Whether the Composites ``specs`` (stacked together) hold the same keys (nested ones
    too when ``recurse``)."""
    first = set(specs[0].keys())
    if any(set(s.keys()) != first for s in specs[1:]):
        return False
    if not recurse:
        return True
    for k in first:
        subs = [s[k] for s in specs]
        if all(isinstance(v, Composite) for v in subs) and not _aligned(subs, True):
            return False
        if not all(check_no_exclusive_keys(v, True) for v in subs):
            return False
    return True


def check_no_exclusive_keys(spec: Any, recurse: bool = True) -> bool:
    """Whether every lazily stacked Composite in ``spec`` holds the same keys in all of its
    stacked specs (only at the top level of ``spec`` when ``recurse=False``).

    >>> import torch
    >>> from streamrl.data.specs import Composite, Unbounded
    >>> stack = torch.stack([Composite(a=Unbounded()), Composite(b=Unbounded())])
    >>> check_no_exclusive_keys(stack), check_no_exclusive_keys(consolidate_spec(stack))
    (False, True)
    """
    if isinstance(spec, StackedComposite):
        if not all(isinstance(s, Composite) for s in spec._specs):
            return all(check_no_exclusive_keys(s, recurse) for s in spec._specs)
        return _aligned(spec._specs, recurse)
    if isinstance(spec, Composite) and recurse:
        return all(
            check_no_exclusive_keys(v, True) for v in spec.values() if isinstance(v, _COMPOSITES)
        )
    return True


def _empty_like(spec: Any, batch_dims: int) -> Any:
    """A spec like ``spec`` holding no values: its dims past the ``batch_dims`` leading ones
    are 0 (only those the stacked specs disagree on, for a lazy stack)."""
    if isinstance(spec, StackedComposite):
        return stack_specs([_empty_like(s, s.ndim) for s in spec._specs], spec.dim)
    if isinstance(spec, Composite):
        out = Composite(shape=spec.shape, device=spec.device)
        for k, v in spec.items():
            out[k] = None if v is None else _empty_like(v, spec.ndim)
        return out
    if isinstance(spec, Stacked):
        shape = [0 if d == -1 else d for d in spec.shape]
    elif isinstance(spec, TensorSpec):
        shape = [*spec.shape[:batch_dims], *[0] * (spec.ndim - batch_dims)]
    else:
        raise TypeError(f"cannot make an empty spec like {type(spec).__name__}")
    return Unbounded(shape=shape, device=spec.device, dtype=spec.dtype)


def _align(specs: list, recurse: bool) -> None:
    """Give every Composite of ``specs`` (in place) the keys any of them holds."""
    keys: list = []
    for s in specs:
        keys.extend(k for k in s.keys() if k not in keys)
    for k in keys:
        template = next(s[k] for s in specs if k in s.keys())
        for s in specs:
            if k not in s.keys():
                s[k] = None if template is None else _empty_like(template, s.ndim)
        subs = [s[k] for s in specs]
        if recurse and all(isinstance(v, Composite) for v in subs):
            _align(subs, recurse)


def _consolidate(spec: Any, entries: bool, stack: bool) -> Any:
    if isinstance(spec, StackedComposite):
        subs = spec._specs
        if stack:
            subs = [_consolidate(s, entries, stack) for s in subs]
        flat = [s for s in subs if isinstance(s, Composite)]
        if len(flat) == len(subs):
            _align(flat, entries)
        return StackedComposite(*subs, dim=spec.dim)
    if isinstance(spec, Composite) and entries:
        for k, v in spec.items():
            if isinstance(v, _COMPOSITES):
                spec._specs[k] = _consolidate(v, entries, stack)
    return spec


def consolidate_spec(
    spec: Any, recurse_through_entries: bool = True, recurse_through_stack: bool = True
) -> Any:
    """A copy of ``spec`` where every lazily stacked Composite holds the same keys in all of
    its stacked specs: a missing key gets an empty spec (0-sized past the batch dims), so the
    stacked entry exists for every slice. ``recurse_through_entries`` also treats nested
    Composites; ``recurse_through_stack`` the specs inside each stack.

    >>> import torch
    >>> from streamrl.data.specs import Composite, Unbounded
    >>> stack = torch.stack([Composite(a=Unbounded((3,))), Composite()])
    >>> consolidate_spec(stack)["a"].shape
    torch.Size([2, -1])
    """
    if not isinstance(spec, TensorSpec | Composite | StackedComposite | Stacked):
        raise TypeError(f"consolidate_spec takes a spec, found {type(spec).__name__}")
    return _consolidate(spec.clone(), recurse_through_entries, recurse_through_stack)
