"""Composite: a (nested) mapping from keys to specs, describing a TensorDict."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.data.specs._base import (
    TensorSpec,
    _expand_shape,
    _size,
    _torch_function,
    norm_index,
)
from streamrl.data.specs.composite_names import check_names, names_after_index

__all__ = ["Composite"]


# attribute names a Composite entry cannot take (``spec["shape"] = ...`` would be ambiguous)
_FORBIDDEN_KEYS = frozenset({"shape", "device", "dtype", "space"})


def _key_tuple(key: Any) -> tuple[str, ...]:
    if isinstance(key, str):
        return (key,)
    if isinstance(key, tuple) and key and all(isinstance(k, str) for k in key):
        return key
    raise TypeError(f"expected a str or tuple-of-str key, found {key!r}")


def _fit_to(key: Any, spec: Any, shape: torch.Size) -> Any:
    """``spec`` checked to start with the batch ``shape``; a nested Composite with fewer
    batch dims (a prefix of ``shape``) is given ``shape`` (a copy: the caller's is kept)."""
    n = len(shape)
    if spec.shape[:n] == shape:
        return spec
    m = len(spec.shape)
    if isinstance(spec, Composite) and m < n and shape[:m] == spec.shape:
        spec = spec.clone()
        spec.shape = shape
        return spec
    raise ValueError(
        f"spec for key {key!r} has shape {spec.shape}, which does not start with the "
        f"Composite's shape {shape}"
    )


def _flatten_key(key: tuple) -> tuple:
    """``("a", ("b", ("c",)))`` as ``("a", "b", "c")``."""
    out: list = []
    for k in key:
        out.extend(_flatten_key(k) if isinstance(k, tuple) else (k,))
    return tuple(out)


class _Keys(list):
    """A list of keys where a one-element tuple ``("a",)`` matches the key ``"a"`` and
    nested tuples ``("a", ("b",))`` match ``("a", "b")``."""

    def __contains__(self, key: object) -> bool:
        if isinstance(key, tuple):
            key = _flatten_key(key)
            if len(key) == 1:
                key = key[0]
        return list.__contains__(self, key)


class Composite:
    """A spec for a TensorDict: keys mapping to leaf specs or nested :class:`Composite`.

    ``shape`` is the batch shape; every sub-spec's shape starts with it. Keys may be nested
    tuples: ``spec["next", "observation"]``. Indexing with anything else indexes the batch
    dims of every sub-spec. A key given ``None`` (``Composite(a=..., b=None)``) is kept as
    an empty entry: listed by ``keys()`` (not by ``leaves_only``), ``spec["b"] is None``,
    and skipped when values are made or checked.

    >>> from streamrl.data.specs import Bounded, Unbounded
    >>> spec = Composite(observation=Unbounded(shape=(3,)), action=Bounded(-1.0, 1.0, (1,)))
    >>> td = spec.rand()
    >>> spec.is_in(td), sorted(td.keys())
    (True, ['action', 'observation'])

    ``shape``, ``device`` and ``names`` (one name or None per batch dim) are keyword-only;
    the keys ``"shape"``, ``"device"``, ``"dtype"`` and ``"space"`` cannot hold entries. A
    nested Composite given with fewer batch dims than its parent takes the parent's
    ``shape`` (its entries must fit it):

    >>> spec = Composite(nested=Composite(x=Unbounded((2, 3))), shape=(2,), names=["env"])
    >>> spec["nested"].shape, spec["nested"].names
    (torch.Size([2]), ['env'])
    """

    domain = "composite"
    _names: list | None = None

    def __init__(
        self,
        spec: Mapping[str, Any] | None = None,
        /,
        *,
        shape: Any = None,
        device: Any = None,
        names: Any = None,
        **kwargs: Any,
    ) -> None:
        self._shape = _size(shape)
        self.device = None if device is None else torch.device(device)
        self._specs: dict[str, TensorSpec | Composite | None] = {}
        # bumped on every key change made through this object (lets envs cache lookups)
        self._version = 0
        self._locked = False
        self.names = names
        for k, v in {**(spec or {}), **kwargs}.items():
            self[k] = v

    # ------------------------------------------------------------ batch shape
    @property
    def shape(self) -> torch.Size:
        """The batch shape: every entry's shape starts with it. Setting it checks the
        entries (nested Composites with fewer dims take the new shape).

        >>> from streamrl.data.specs import Unbounded
        >>> spec = Composite(a=Unbounded((3, 2)))
        >>> spec.shape = (3,)
        >>> spec.shape
        torch.Size([3])
        """
        return self._shape

    @shape.setter
    def shape(self, value: Any) -> None:
        new = _size(value)
        if new == self._shape:
            return
        for k, v in self._specs.items():
            if v is not None:
                self._specs[k] = _fit_to(k, v, new)
        self._shape = new
        if self._names is not None and len(self._names) != len(new):
            self._names = None

    @property
    def names(self) -> list:
        """One name (or None) per batch dim, as ``TensorDict.names``; nested Composites
        share the leading names. Set to None to erase them."""
        return list(self._names) if self._names is not None else [None] * self.ndim

    @names.setter
    def names(self, value: Any) -> None:
        self._names = check_names(value, self.ndim)
        if self._names is not None:
            for v in self._specs.values():
                if isinstance(v, Composite):
                    v._inherit_names(self._names)

    def _inherit_names(self, names: list) -> None:
        mine = self.names
        self.names = [*names, *mine[len(names) :]]

    def _has_names(self) -> bool:
        return self._names is not None and any(n is not None for n in self._names)

    def _erase_names(self) -> None:
        self._names = None

    def refine_names(self, *names: Any) -> Composite:
        """Name the batch dims (as ``TensorDict.refine_names``): ``...`` stands for the dims
        not listed; a dim already named keeps its name. Returns self.

        >>> Composite(shape=(2, 3)).refine_names("env", ...).names
        ['env', None]
        """
        if names.count(Ellipsis) > 1:
            raise ValueError("refine_names takes at most one ...")
        if Ellipsis in names:
            i = names.index(Ellipsis)
            fill = [None] * (self.ndim - len(names) + 1)
            names = (*names[:i], *fill, *names[i + 1 :])
        new = check_names(list(names), self.ndim) or [None] * self.ndim
        old = self.names
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            if a is not None and b is not None and a != b:
                raise RuntimeError(
                    f"cannot coerce Composite names {old} to {list(names)}: dim {i} is "
                    f"already named {a!r}"
                )
        self.names = [a if a is not None else b for a, b in zip(old, new, strict=True)]
        return self

    def _with_names(self, out: Composite, names: list | None) -> Composite:
        if names is not None and any(n is not None for n in names):
            out.names = names
        return out

    # -------------------------------------------------------------- mapping API
    def _check_sub(self, key: str, spec: Any) -> TensorSpec | Composite | None:
        if spec is None:
            return None
        if isinstance(spec, Mapping) and not isinstance(spec, Composite):
            spec = Composite(spec, shape=self.shape, device=self.device)
        from streamrl.data.specs.stacked import _Lazy

        if not isinstance(spec, TensorSpec | Composite | _Lazy):
            raise TypeError(
                f"spec for key {key!r} must be a TensorSpec or Composite, found "
                f"{type(spec).__name__}"
            )
        spec = _fit_to(key, spec, self.shape)
        if self.device is not None and spec.device != self.device:
            spec = spec.to(self.device)
        if self._names is not None and isinstance(spec, Composite):
            spec._inherit_names(self._names)
        return spec

    def __setitem__(self, key: Any, spec: Any) -> None:
        if not isinstance(key, str | tuple):
            raise TypeError(f"Composite keys must be str or tuples of str, found {key!r}")
        keys = _key_tuple(key)
        if keys[-1] in _FORBIDDEN_KEYS:
            raise AttributeError(
                f"the key {keys[-1]!r} cannot be set: it names a Composite attribute "
                f"(forbidden keys: {sorted(_FORBIDDEN_KEYS)})"
            )
        node = self
        for k in keys[:-1]:
            sub = node._specs.get(k)
            if sub is None:
                node._check_unlocked(key)
                sub = Composite(shape=node.shape, device=node.device)
                node._specs[k] = sub
            elif not isinstance(sub, Composite):
                raise KeyError(f"key {k!r} holds a leaf spec, cannot nest {key!r} under it")
            node = sub
        node._check_unlocked(key)  # only the Composite that changes must be unlocked
        node._specs[keys[-1]] = node._check_sub(keys[-1], spec)
        self._version += 1

    set = __setitem__

    def _check_unlocked(self, key: Any) -> None:
        if self._locked:
            raise RuntimeError(
                f"Cannot modify a locked Composite. (setting or deleting {key!r}; "
                f"unlock_() it first)"
            )

    def lock_(self, recurse: bool | None = None) -> Composite:
        """Forbid setting or deleting keys (in nested Composites too, unless
        ``recurse=False``); returns self.

        >>> from streamrl.data.specs import Unbounded
        >>> spec = Composite(a=Unbounded()).lock_()
        >>> spec.is_locked
        True
        """
        self._set_lock(True, recurse is not False)
        return self

    def unlock_(self, recurse: bool | None = None) -> Composite:
        """Allow setting and deleting keys again (nested too unless ``recurse=False``)."""
        self._set_lock(False, recurse is not False)
        return self

    def _set_lock(self, value: bool, recurse: bool) -> None:
        self._locked = value
        if recurse:
            for v in self._specs.values():
                if isinstance(v, Composite):
                    v._set_lock(value, True)

    @property
    def is_locked(self) -> bool:
        """Whether keys can be set or deleted (see :meth:`lock_`)."""
        return self._locked

    locked = is_locked

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str) or (
            isinstance(key, tuple) and key and all(isinstance(k, str) for k in key)
        ):
            node: Any = self
            for k in _key_tuple(key):
                if not isinstance(node, Composite) or k not in node._specs:
                    raise KeyError(f"key {key!r} not in Composite with keys {self.keys(True)}")
                node = node._specs[k]
            return node
        key = norm_index(key, self.shape)
        new_shape = torch.empty(self.shape, device="meta")[key].shape
        out = Composite(shape=new_shape, device=self.device)
        for k, v in self._specs.items():
            out._specs[k] = None if v is None else v[key]
        if self._has_names():
            names = names_after_index(self.names, self.shape, key)
            if names is not None and len(names) == len(new_shape):
                self._with_names(out, names)
        return out

    def get(self, key: Any, default: Any = None) -> Any:
        """The spec at ``key`` or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: Any) -> bool:
        try:
            self[_key_tuple(key)]
        except (KeyError, TypeError):
            return False
        return True

    def __delitem__(self, key: Any) -> None:
        keys = _key_tuple(key)
        parent = self[keys[:-1]] if len(keys) > 1 else self
        if not isinstance(parent, Composite) or keys[-1] not in parent._specs:
            raise KeyError(f"key {key!r} not in Composite")
        parent._check_unlocked(key)
        del parent._specs[keys[-1]]
        self._version += 1

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove and return the spec at ``key``."""
        try:
            val = self[key]
        except KeyError:
            if default:
                return default[0]
            raise
        del self[key]
        return val

    def update(self, other: Mapping[str, Any] | Composite) -> Composite:
        """Set every key of ``other``; a Composite entry of ``other`` whose key holds a
        Composite here updates that one (nested keys are merged, not replaced). Returns self.

        >>> from streamrl.data.specs import Unbounded
        >>> spec = Composite(a=Composite(b=Unbounded()))
        >>> spec.update(Composite(a=Composite(c=None))).keys(True)
        ['a', ('a', 'b'), ('a', 'c')]
        """
        items = other.items() if isinstance(other, Composite) else dict(other).items()
        for k, v in items:
            mine = self._specs.get(k) if isinstance(k, str) else None
            if isinstance(v, Composite) and isinstance(mine, Composite) and v is not mine:
                mine.update(v)
                self._version += 1
            else:
                self[k] = v
        return self

    def keys(self, include_nested: bool = False, leaves_only: bool = False) -> list:
        """Keys, optionally with nested tuple keys and/or only the leaves; ``("a",)`` is
        found in them as ``"a"``.

        >>> from streamrl.data.specs import Unbounded
        >>> spec = Composite(a=Composite(b=Unbounded()), c=None)
        >>> spec.keys(True), spec.keys(True, True), ("c",) in spec.keys()
        (['a', ('a', 'b'), 'c'], [('a', 'b')], True)
        """
        return _Keys(k for k, _ in self.items(include_nested, leaves_only))

    def items(self, include_nested: bool = False, leaves_only: bool = False) -> list:
        """``(key, spec)`` pairs, optionally nested (tuple keys) and/or leaves only."""
        out: list = []
        for k, v in self._specs.items():
            is_comp = isinstance(v, Composite)
            if not (leaves_only and (is_comp or v is None)):
                out.append((k, v))
            if include_nested and isinstance(v, Composite):
                out.extend(((k, *_key_tuple(kk)), vv) for kk, vv in v.items(True, leaves_only))
        return out

    def values(self, include_nested: bool = False, leaves_only: bool = False) -> list:
        """Specs, optionally nested and/or leaves only."""
        return [v for _, v in self.items(include_nested, leaves_only)]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._specs))

    def __len__(self) -> int:
        return len(self._specs)

    def is_empty(self) -> bool:
        """Whether no leaf spec is held (nested empty Composites count as empty)."""
        return not self.keys(True, True)

    def select(self, *keys: Any, strict: bool = True) -> Composite:
        """A Composite with only ``keys`` (nested keys allowed)."""
        out = Composite(shape=self.shape, device=self.device)
        for k in keys:
            if k in self:
                sub = self[k]
                out[k] = None if sub is None else sub.clone()
            elif strict:
                raise KeyError(f"key {k!r} not in Composite with keys {self.keys(True)}")
        return out

    def exclude(self, *keys: Any) -> Composite:
        """A copy without ``keys``."""
        out = self.clone()
        for k in keys:
            if k in out:
                del out[k]
        return out

    def empty(self) -> Composite:
        """An empty Composite with the same shape and device."""
        return Composite(shape=self.shape, device=self.device)

    # ---------------------------------------------------------------- values
    @property
    def ndim(self) -> int:
        """Number of batch dims."""
        return len(self.shape)

    @property
    def batch_size(self) -> torch.Size:
        """Same as :attr:`shape` (the batch shape)."""
        return self.shape

    def ndimension(self) -> int:
        """Same as :attr:`ndim`."""
        return self.ndim

    def sample(self, shape: Any = None) -> TensorDict:
        """Same as :meth:`rand`."""
        return self.rand(shape)

    def zeros(self, shape: Any = None) -> TensorDict:
        """Same as :meth:`zero`."""
        return self.zero(shape)

    def ones(self, shape: Any = None) -> TensorDict:
        """Same as :meth:`one`."""
        return self.one(shape)

    def contains(self, item: Any) -> bool:
        """Same as :meth:`is_in`."""
        return self.is_in(item)

    def cuda(self, device: Any = None) -> Composite:
        """A copy on CUDA device ``device`` (the current one when None)."""
        return self.to("cuda" if device is None else device)

    def cardinality(self) -> int:
        """The number of distinct values (the product over the leaves' cardinalities)."""
        out = 1
        for leaf in self.values(True, True):
            out *= leaf.cardinality()
        return out

    def enumerate(self, use_mask: bool = False) -> TensorDict:
        """Every value of the spec, stacked along a new leading dim (the product over the
        leaves' values); every leaf must be enumerable (discrete).

        >>> from streamrl.data.specs import Categorical
        >>> Composite(a=Categorical(2), b=Categorical(3)).enumerate()["b"].tolist()
        [0, 1, 2, 0, 1, 2]
        """
        items = self.items(True, True)
        for k, leaf in items:
            if not hasattr(leaf, "enumerate"):
                raise TypeError(f"key {k!r}: {type(leaf).__name__} values cannot be enumerated")
        enums = [leaf.enumerate(use_mask=use_mask) for _, leaf in items]
        if not enums:
            raise ValueError("cannot enumerate an empty Composite")
        grids = torch.meshgrid(*[torch.arange(e.shape[0]) for e in enums], indexing="ij")
        out = TensorDict({}, batch_size=(grids[0].numel(), *self.shape), device=self.device)
        for (k, _), e, g in zip(items, enums, grids, strict=True):
            out.set(k, e[g.reshape(-1)])
        return out

    def _make(self, fn: str, shape: Any) -> TensorDict:
        lead = _size(shape)
        src = {k: getattr(v, fn)(lead) for k, v in self._specs.items() if v is not None}
        return TensorDict(src, batch_size=(*lead, *self._shape), device=self.device)

    def rand(self, shape: Any = None) -> TensorDict:
        """A TensorDict of random values (extra leading dims ``shape``)."""
        return self._make("rand", shape)

    def zero(self, shape: Any = None) -> TensorDict:
        """A TensorDict of zero values."""
        return self._make("zero", shape)

    def one(self, shape: Any = None) -> TensorDict:
        """A TensorDict of one values."""
        return self._make("one", shape)

    def is_in(self, val: Any) -> bool:
        """Whether every key of the spec is in ``val`` and holds a valid value."""
        if not isinstance(val, TensorDictBase | Mapping):
            return False
        for k, spec in self._specs.items():
            if spec is None:
                continue
            sub = val.get(k, None)
            if sub is None or not spec.is_in(sub):
                return False
        return True

    def check(self, val: Any, name: str = "tensordict") -> None:
        """Raise ``TypeError``/``ValueError``/``KeyError`` saying why ``val`` is not in."""
        for k, spec in self._specs.items():
            if spec is None:
                continue
            sub = val.get(k, None)
            if sub is None:
                raise KeyError(f"{name}: missing key {k!r}")
            spec.check(sub, f"{name}[{k!r}]")

    assert_is_in = check

    def project(self, val: TensorDictBase) -> TensorDictBase:
        """Project every spec'd entry of ``val`` into its spec (in place; returns ``val``)."""
        for k, spec in self._specs.items():
            if spec is None:
                continue
            sub = val.get(k, None)
            if sub is not None:
                try:
                    projected = spec.project(sub)
                except (TypeError, ValueError) as err:  # named by the entry's key
                    raise type(err)(f"{k!r}: {err}") from err
                val.set(k, projected)
        return val

    def encode(self, vals: Mapping[str, Any], *, ignore_device: bool = False) -> TensorDict:
        """Turn a (nested) dict of numbers/arrays into a TensorDict (each entry encoded by
        its spec; ``ignore_device`` leaves the values where they are)."""
        for k in vals:
            if self._specs.get(k) is None:
                raise KeyError(
                    f"The Composite instance with keys {self.keys()} has no spec for key "
                    f"{k!r}: cannot encode it"
                )
        src = {
            k: self._specs[k].encode(v, ignore_device=ignore_device)  # type: ignore[union-attr]
            for k, v in vals.items()
        }
        device = None if ignore_device else self.device
        return TensorDict(src, batch_size=self.shape, device=device)

    def memoize_encode(self, mode: bool = True) -> None:
        """Turn on (off with ``mode=False``) the memoized :meth:`encode` of every entry
        (see :meth:`TensorSpec.memoize_encode`)."""
        for v in self.values(True, True):
            v.memoize_encode(mode)

    def erase_memoize_cache(self) -> None:
        """Forget every entry's memoized encoders."""
        for v in self.values(True, True):
            v.erase_memoize_cache()

    def _project(self, val: TensorDictBase) -> TensorDictBase:
        return self.project(val)

    def clear_device_(self) -> Composite:
        """Erase the device of this Composite and of the nested ones (entries may then
        live on different devices); returns self."""
        self.device = None
        for v in self._specs.values():
            if v is not None:
                v.clear_device_()
        return self

    def type_check(self, value: Any, selected_keys: Any = None) -> None:
        """Raise ``TypeError`` when an entry's dtype is not its spec's: ``value`` is a
        TensorDict (all entries, or those of ``selected_keys``) or, with ``selected_keys``
        one key, that entry's tensor.

        >>> from streamrl.data.specs import Unbounded
        >>> spec = Composite(a=Unbounded())
        >>> spec.type_check(spec.rand()); spec.type_check(torch.zeros(1), "a")
        """
        if isinstance(value, torch.Tensor):
            if selected_keys is None:
                raise ValueError("type_check of a tensor needs its key as selected_keys")
            spec = self[selected_keys]
            if spec is not None:
                spec.type_check(value, selected_keys)
            return
        keys = self.keys() if selected_keys is None else selected_keys
        keys = [keys] if isinstance(keys, str) else keys
        for k in keys:
            spec, sub = self[k], value.get(k, None)
            if hasattr(spec, "keys") and sub is not None:  # a (stacked) Composite
                spec.type_check(sub)
            elif spec is not None and sub is not None:
                spec.type_check(sub, k)

    def index_select(self, dim: int, index: torch.Tensor) -> Composite:
        """The Composite of ``torch.index_select(td, dim, index)`` (also reached through
        ``torch.index_select(spec, dim, index)``): ``dim`` must be a batch dim."""
        d = dim + self.ndim if dim < 0 else dim
        if not 0 <= d < self.ndim:
            raise IndexError(f"index_select dim {dim} is out of range for shape {self.shape}")
        out = Composite(shape=self.shape, device=self.device)
        for k, v in self._specs.items():
            out._specs[k] = None if v is None else v.index_select(d, index)
        out._shape = torch.Size(
            [*self.shape[:d], len(torch.as_tensor(index).reshape(-1)), *self.shape[d + 1 :]]
        )
        return self._with_names(out, self._names)

    # ---------------------------------------------------------- shape algebra
    def expand(self, *shape: Any) -> Composite:
        """A copy with batch shape ``shape`` (must end with the current batch shape; size-1
        dims broadcast)."""
        new = _expand_shape(shape)
        n = self.ndim
        tail = new[len(new) - n :] if n else torch.Size([])
        if len(new) < n or any(h not in (w, 1) for h, w in zip(self.shape, tail, strict=True)):
            raise ValueError(f"cannot expand Composite of shape {self.shape} to {new}")
        out = Composite(shape=new, device=self.device)
        for k, v in self._specs.items():
            out._specs[k] = None if v is None else v.expand((*new, *v.shape[n:]))
        return self._with_names(out, [None] * (len(new) - n) + self.names)

    def unsqueeze(self, dim: int) -> Composite:
        """Add a batch dim of size 1 at ``dim`` (0 <= dim <= ndim) to every sub-spec."""
        if dim < 0:
            dim += self.ndim + 1
        if not 0 <= dim <= self.ndim:
            raise ValueError(f"dim must be in [0, {self.ndim}], found {dim}")
        out = Composite(
            shape=torch.empty(self.shape, device="meta").unsqueeze(dim).shape, device=self.device
        )
        for k, v in self._specs.items():
            out._specs[k] = None if v is None else v.unsqueeze(dim)
        names = self.names
        names.insert(dim, None)
        return self._with_names(out, names)

    def reshape(self, *shape: Any) -> Composite:
        """A copy with batch shape ``shape`` (as ``tensor.reshape``; feature dims kept).

        >>> from streamrl.data.specs import Unbounded
        >>> Composite(a=Unbounded((2, 3, 4)), shape=(2, 3)).reshape(-1)["a"].shape
        torch.Size([6, 4])
        """
        try:
            new = torch.empty(self.shape, device="meta").reshape(_expand_shape(shape)).shape
        except RuntimeError:
            raise ValueError(f"cannot reshape Composite of shape {self.shape} to {shape}") from None
        n = self.ndim
        out = Composite(shape=new, device=self.device)
        for k, v in self._specs.items():
            out._specs[k] = None if v is None else v.reshape((*new, *v.shape[n:]))
        return out

    view = reshape

    def squeeze(self, dim: int | None = None) -> Composite:
        """Remove the batch dim ``dim`` (of size 1) from every sub-spec (every size-1 batch
        dim when ``dim`` is None)."""
        if dim is None:
            out = self
            for d in reversed(range(self.ndim)):
                if self.shape[d] == 1:
                    out = out.squeeze(d)
            return out if out is not self else self.clone()
        if dim < 0:
            dim += self.ndim
        if not 0 <= dim < self.ndim or self.shape[dim] != 1:
            raise ValueError(f"cannot squeeze dim {dim} of batch shape {self.shape}")
        out = Composite(
            shape=torch.empty(self.shape, device="meta").squeeze(dim).shape, device=self.device
        )
        for k, v in self._specs.items():
            out._specs[k] = None if v is None else v.squeeze(dim)
        names = self.names
        del names[dim]
        return self._with_names(out, names)

    def to(self, dest: Any) -> Composite:
        """A copy on device ``dest`` (or with every leaf cast to dtype ``dest``)."""
        if isinstance(dest, torch.dtype):
            out = Composite(shape=self.shape, device=self.device)
        else:
            out = Composite(shape=self.shape, device=dest)
        for k, v in self._specs.items():
            out._specs[k] = None if v is None else v.to(dest)
        return self._with_names(out, self._names)

    def cpu(self) -> Composite:
        """A copy on the CPU."""
        return self.to("cpu")

    def clone(self) -> Composite:
        """A deep copy."""
        out = Composite(shape=self.shape, device=self.device)
        for k, v in self._specs.items():
            out._specs[k] = None if v is None else v.clone()
        return self._with_names(out, self._names)

    def unbind(self, dim: int = 0) -> tuple[Composite, ...]:
        """The Composites of the slices along batch dim ``dim``.

        >>> from streamrl.data.specs import Unbounded
        >>> parts = Composite(a=Unbounded((2, 3)), shape=(2,)).unbind(0)
        >>> len(parts), parts[0]["a"].shape
        (2, torch.Size([3]))
        """
        d = dim + self.ndim if dim < 0 else dim
        if not 0 <= d < self.ndim:
            raise ValueError(f"unbind dim must be a batch dim of shape {self.shape}, found {dim}")
        lead = (slice(None),) * d
        return tuple(self[idx] for idx in ((*lead, i) for i in range(self.shape[d])))

    def to_numpy(self, val: TensorDictBase, safe: bool | None = None) -> dict:
        """A (nested) dict of numpy arrays for the spec'd entries of ``val``; ``safe=True``
        first checks ``val`` against the spec."""
        if safe:
            self.check(val)
        out: dict = {}
        for k, spec in self._specs.items():
            if spec is None:
                continue
            sub = val.get(k, None)
            if sub is not None:
                out[k] = spec.to_numpy(sub)
        return out

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        return _torch_function(func, args, kwargs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Composite):
            return False
        if self.shape != other.shape or self.device != other.device:
            return False
        if set(self._specs) != set(other._specs):
            return False
        return all(
            (v is None and other._specs[k] is None) or (v is not None and v == other._specs[k])
            for k, v in self._specs.items()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        subs = ",\n".join(
            f"    {k}: " + repr(v).replace("\n", "\n    ") for k, v in self._specs.items()
        )
        body = f"{subs},\n" if subs else ""
        return f"Composite(\n{body}    device={self.device},\n    shape={self.shape})"
