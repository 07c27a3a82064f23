"""Lazy stacks of specs: ``torch.stack([spec_a, spec_b])`` when the specs differ.

Stacking equal specs gives one ordinary spec with a new batch dim; stacking different ones
(a multi-agent or multi-task setting) gives a :class:`Stacked` (leaf specs) or a
:class:`StackedComposite` (composite specs) that keeps every spec and answers per slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tensordict import LazyStackedTensorDict, TensorDictBase

from streamrl.data.specs._base import TensorSpec, _size

__all__ = ["Stacked", "StackedComposite", "stack_specs"]


def _stacked_shape(specs: Sequence[Any], dim: int) -> torch.Size:
    """The common shape with the stack dim inserted; dims that differ are ``-1``."""
    first = specs[0].shape
    if any(len(s.shape) != len(first) for s in specs):
        found = [tuple(s.shape) for s in specs]
        raise ValueError(f"stacked specs must have the same number of dims, found {found}")
    shape = [d if all(s.shape[i] == d for s in specs) else -1 for i, d in enumerate(first)]
    shape.insert(dim, len(specs))
    return torch.Size(shape)


def _is_key(key: Any) -> bool:
    return isinstance(key, str) or (
        isinstance(key, tuple) and bool(key) and all(isinstance(k, str) for k in key)
    )


def _norm_dim(dim: int, ndim: int) -> int:
    d = dim + ndim + 1 if dim < 0 else dim
    if not 0 <= d <= ndim:
        raise ValueError(f"stack dim must be in [{-ndim - 1}, {ndim}], found {dim}")
    return d


def stack_specs(specs: Sequence[Any], dim: int = 0, *, out: Any = None) -> Any:
    """Stack specs along a new dim ``dim`` (what ``torch.stack`` does with specs).

    Equal specs give one spec of the same class with the new dim; different ones give a
    :class:`Stacked` or :class:`StackedComposite`.

    >>> import torch
    >>> from streamrl.data.specs import Bounded
    >>> torch.stack([Bounded(0.0, 1.0, (3,))] * 2).shape
    torch.Size([2, 3])
    >>> type(torch.stack([Bounded(0.0, 1.0, (3,)), Bounded(0.0, 2.0, (3,))])).__name__
    'Stacked'
    """
    from streamrl.data.specs.composite import Composite

    if out is not None:
        raise TypeError("torch.stack of specs does not take out=")
    specs = list(specs)
    if not specs:
        raise ValueError("cannot stack an empty list of specs")
    kinds = {isinstance(s, Composite | StackedComposite) for s in specs}
    if len(kinds) > 1 or not all(isinstance(s, TensorSpec | Composite | _Lazy) for s in specs):
        found = sorted({type(s).__name__ for s in specs})
        raise TypeError(f"can only stack specs of one kind (leaf or composite), found {found}")
    d = _norm_dim(dim, len(specs[0].shape))
    first = specs[0]
    if all(type(s) is type(first) and s == first for s in specs[1:]) and not isinstance(
        first, _Lazy
    ):
        shape = list(first.shape)
        shape.insert(d, len(specs))
        return first.unsqueeze(d).expand(shape)
    if kinds == {True}:
        return StackedComposite(*specs, dim=d)
    return Stacked(*specs, dim=d)


class _Lazy:
    """Shared by :class:`Stacked` and :class:`StackedComposite`."""

    def _stack_values(self, vals: list, dim: int) -> Any:
        raise NotImplementedError

    def __init__(self, *specs: Any, dim: int) -> None:
        if len(specs) == 1 and isinstance(specs[0], list | tuple):
            specs = tuple(specs[0])
        if not specs:
            raise ValueError(f"{type(self).__name__} needs at least one spec")
        self._specs = list(specs)
        self.dim = _norm_dim(dim, len(specs[0].shape))
        self.shape = _stacked_shape(self._specs, self.dim)
        self.device = specs[0].device

    @property
    def stack_dim(self) -> int:
        """The dim along which the specs are stacked (same as ``dim``)."""
        return self.dim

    @property
    def ndim(self) -> int:
        """Number of dims of ``shape`` (the stack dim included)."""
        return len(self.shape)

    def _values(self, fn: str, shape: Any) -> Any:
        lead = _size(shape)
        vals = [getattr(s, fn)(lead) for s in self._specs]
        return self._stack_values(vals, len(lead) + self.dim)

    def rand(self, shape: Any = None) -> Any:
        """One random value per stacked spec, stacked along the stack dim."""
        return self._values("rand", shape)

    def zero(self, shape: Any = None) -> Any:
        """The stacked zero values."""
        return self._values("zero", shape)

    def one(self, shape: Any = None) -> Any:
        """The stacked one values."""
        return self._values("one", shape)

    def _split(self, val: Any) -> list | None:
        lead = val.ndim - self.ndim  # TensorDict.ndim is its number of batch dims
        if lead < 0:
            return None
        d = lead + self.dim
        if val.shape[d] != len(self._specs):
            return None
        return list(val.unbind(d))

    def is_in(self, val: Any) -> bool:
        """Whether every slice of ``val`` along the stack dim is in its spec."""
        try:
            parts = self._split(val)
        except (AttributeError, TypeError):
            return False
        return parts is not None and all(
            s.is_in(v) for s, v in zip(self._specs, parts, strict=True)
        )

    def project(self, val: Any) -> Any:
        """Project every slice into its spec and stack them again."""
        parts = self._split(val)
        if parts is None:
            raise ValueError(f"expected {len(self._specs)} entries along dim {self.dim}")
        d = val.ndim - self.ndim + self.dim
        return self._stack_values(
            [s.project(v) for s, v in zip(self._specs, parts, strict=True)], d
        )

    def unbind(self, dim: int = 0) -> tuple:
        """The stacked specs (only the stack dim can be unbound)."""
        d = dim + self.ndim if dim < 0 else dim
        if d != self.dim:
            raise ValueError(f"{type(self).__name__} unbinds along its stack dim {self.dim} only")
        return tuple(self._specs)

    def __len__(self) -> int:
        return self.shape[0]

    def _index_stack(self, index: Any) -> Any:
        if self.dim != 0:
            if (
                not isinstance(index, tuple)
                or len(index) <= self.dim
                or any(i != slice(None) for i in index[: self.dim])
            ):
                raise IndexError(f"{type(self).__name__} is indexed along its stack dim only")
            index = index[self.dim] if len(index) == self.dim + 1 else None
            if index is None:
                raise IndexError(f"{type(self).__name__} is indexed along its stack dim only")
        if isinstance(index, tuple) and len(index) == 1:
            index = index[0]
        if isinstance(index, int):
            return self._specs[index]
        if isinstance(index, slice):
            picked = self._specs[index]
        elif isinstance(index, torch.Tensor | list | np.ndarray):
            idx = torch.as_tensor(index)
            if idx.dtype == torch.bool:
                idx = idx.nonzero().squeeze(-1)
            picked = [self._specs[i] for i in idx.reshape(-1).tolist()]
        else:
            raise IndexError(f"cannot index {type(self).__name__} with {index!r}")
        return stack_specs(picked, self.dim)

    def expand(self, *shape: Any) -> Any:
        """Add leading dims: ``shape`` must end with our shape (``-1`` dims kept as they are)."""
        new = torch.Size(shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)
        n = len(new) - self.ndim
        if n < 0 or any(w not in (h, -1) for h, w in zip(self.shape, new[n:], strict=True)):
            raise ValueError(f"cannot expand {type(self).__name__} of shape {self.shape} to {new}")
        specs = [s.expand((*new[:n], *s.shape)) for s in self._specs]
        return type(self)(*specs, dim=self.dim + n)

    def unsqueeze(self, dim: int) -> Any:
        """A copy with a new size-1 dim at ``dim`` (the stack dim moves up if it is after)."""
        d = dim + self.ndim + 1 if dim < 0 else dim
        if not 0 <= d <= self.ndim:
            raise ValueError(f"unsqueeze dim must be in [0, {self.ndim}], found {dim}")
        if d <= self.dim:
            return type(self)(*[s.unsqueeze(d) for s in self._specs], dim=self.dim + 1)
        return type(self)(*[s.unsqueeze(d - 1) for s in self._specs], dim=self.dim)

    def squeeze(self, dim: int | None = None) -> Any:
        """A copy without the size-1 dim ``dim`` (the stack dim only if one spec is stacked:
        that spec is returned); every size-1 dim when ``dim`` is None."""
        if dim is None:
            out = self
            for d in reversed(range(self.ndim)):
                if self.shape[d] == 1:
                    out = out.squeeze(d)
            return out
        d = dim + self.ndim if dim < 0 else dim
        if not 0 <= d < self.ndim or self.shape[d] != 1:
            raise ValueError(f"cannot squeeze dim {dim} of shape {self.shape}")
        if d == self.dim:
            return self._specs[0]
        if d < self.dim:
            return type(self)(*[s.squeeze(d) for s in self._specs], dim=self.dim - 1)
        return type(self)(*[s.squeeze(d - 1) for s in self._specs], dim=self.dim)

    def assert_is_in(self, val: Any) -> None:
        """Raise ``ValueError`` when ``val`` is not in the stacked specs."""
        if not self.is_in(val):
            raise ValueError(f"value is not in {type(self).__name__} of shape {self.shape}")

    def cpu(self) -> Any:
        """A copy on the CPU."""
        return self.to("cpu")

    def to(self, dest: Any) -> Any:
        """A copy with every stacked spec moved (or cast) to ``dest``."""
        return type(self)(*[s.to(dest) for s in self._specs], dim=self.dim)

    def clone(self) -> Any:
        """A deep copy."""
        return type(self)(*[s.clone() for s in self._specs], dim=self.dim)

    def to_numpy(self, val: Any, safe: bool | None = None) -> Any:
        """``val`` as numpy (per-slice values stacked); ``safe=True`` checks it first."""
        if safe and not self.is_in(val):
            raise ValueError(f"value is not in {type(self).__name__}")
        if isinstance(val, torch.Tensor):
            return val.detach().cpu().numpy()
        return val.numpy()

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.stack:
            return stack_specs(*args, **(kwargs or {}))
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        return (
            type(self) is type(other)
            and self.dim == other.dim
            and len(self._specs) == len(other._specs)
            and all(a == b for a, b in zip(self._specs, other._specs, strict=True))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ",\n".join("    " + repr(s).replace("\n", "\n    ") for s in self._specs)
        return f"{type(self).__name__}(\n{inner},\n    dim={self.dim},\n    shape={self.shape})"


class Stacked(_Lazy):
    """A lazy stack of leaf specs along ``dim`` (``shape`` has ``-1`` where they differ).

    Values are stacked samples; specs whose shapes differ cannot give one tensor, so
    ``rand`` then raises. Indexing works along the stack dim only.

    >>> from streamrl.data.specs import Bounded
    >>> spec = Stacked(Bounded(0.0, 1.0, (3,)), Bounded(0.0, 2.0, (3,)), dim=0)
    >>> val = spec.rand()
    >>> val.shape, spec.is_in(val), spec[1].high[0].item()
    (torch.Size([2, 3]), True, 2.0)
    """

    def __init__(self, *specs: TensorSpec, dim: int) -> None:
        super().__init__(*specs, dim=dim)
        bad = [type(s).__name__ for s in self._specs if not isinstance(s, TensorSpec | Stacked)]
        if bad:
            raise TypeError(f"Stacked holds leaf specs, found {bad}")
        dtypes = {s.dtype for s in self._specs}
        if len(dtypes) > 1:
            raise ValueError(f"stacked specs must share a dtype, found {sorted(map(str, dtypes))}")
        self.dtype = self._specs[0].dtype
        self.domain = self._specs[0].domain

    def _stack_values(self, vals: list, dim: int) -> torch.Tensor:
        if len({v.shape for v in vals}) > 1:
            raise ValueError(
                f"cannot stack values of shapes {[tuple(v.shape) for v in vals]} into one "
                "tensor (the stacked specs have different shapes)"
            )
        return torch.stack(vals, dim)

    def __getitem__(self, index: Any) -> Any:
        return self._index_stack(index)


class StackedComposite(_Lazy):
    """A lazy stack of :class:`Composite` specs; values are lazily stacked TensorDicts, so
    the stacked specs may hold different keys or shapes.

    ``spec[key]`` stacks the entries at ``key``; other indices index the stack dim.

    >>> from streamrl.data.specs import Composite, Unbounded
    >>> spec = torch.stack([Composite(a=Unbounded((3,))), Composite(a=Unbounded((4,)))])
    >>> td = spec.rand()
    >>> type(spec).__name__, td[1]["a"].shape, spec.is_in(td)
    ('StackedComposite', torch.Size([4]), True)
    """

    def __init__(self, *specs: Any, dim: int) -> None:
        super().__init__(*specs, dim=dim)
        from streamrl.data.specs.composite import Composite

        bad = [
            type(s).__name__ for s in self._specs if not isinstance(s, Composite | StackedComposite)
        ]
        if bad:
            raise TypeError(f"StackedComposite holds Composite specs, found {bad}")

    def _stack_values(self, vals: list, dim: int) -> TensorDictBase:
        return LazyStackedTensorDict(*vals, stack_dim=dim)

    def keys(self, include_nested: bool = False, leaves_only: bool = False) -> list:
        """The keys every stacked spec holds."""
        sets = [s.keys(include_nested, leaves_only) for s in self._specs]
        return [k for k in sets[0] if all(k in other for other in sets[1:])]

    def __contains__(self, key: Any) -> bool:
        return all(key in s for s in self._specs)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, str) or (
            isinstance(index, tuple) and index and all(isinstance(k, str) for k in index)
        ):
            return stack_specs([s[index] for s in self._specs], self.dim)
        return self._index_stack(index)

    def __setitem__(self, key: Any, spec: Any) -> None:
        """Set ``key`` in every stacked Composite to the matching slice of ``spec`` (whose
        shape must have this stack's size at the stack dim)."""
        if not _is_key(key):
            raise RuntimeError(
                f"key should be a Sequence<NestedKey> (a str or a tuple of str), found {key!r}"
            )
        n = len(self._specs)
        if spec is None:
            parts: Any = [None] * n
        else:
            if len(spec.shape) <= self.dim or spec.shape[self.dim] != n:
                raise ValueError(
                    f"spec for key {key!r} must have size {n} at the stack dim {self.dim}, "
                    f"found shape {tuple(spec.shape)}"
                )
            parts = spec.unbind(self.dim)
        for s, part in zip(self._specs, parts, strict=True):
            s[key] = part

    def __delitem__(self, key: Any) -> None:
        """Delete ``key`` from every stacked Composite that holds it (``KeyError`` when none
        does)."""
        holders = [s for s in self._specs if key in s]
        if not holders:
            raise KeyError(f"key {key!r} is in none of the stacked Composites")
        for s in holders:
            del s[key]

    def update(self, other: Any) -> StackedComposite:
        """Set every key ``other`` has in all of its stacked specs (keys held by some of
        them only are left out); returns self."""
        for k in other.keys():
            self[k] = other[k]
        return self

    def type_check(self, value: Any, selected_keys: Any = None) -> None:
        """Raise ``TypeError`` when an entry's dtype is not its spec's (slice by slice)."""
        if isinstance(value, torch.Tensor):
            self[selected_keys].type_check(value, selected_keys)
            return
        parts = self._split(value)
        if parts is None:
            raise ValueError(f"expected {len(self._specs)} entries along dim {self.dim}")
        for s, v in zip(self._specs, parts, strict=True):
            s.type_check(v, selected_keys)
