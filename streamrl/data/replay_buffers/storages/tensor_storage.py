"""Preallocated tensor storage, allocated from the first batch written."""

from __future__ import annotations

from collections.abc import Callable

import torch
from tensordict import TensorDict, TensorDictBase, is_tensorclass
from torch.utils import _pytree as pytree

from streamrl.data.replay_buffers._state import (
    Commit,
    check_tensor,
    check_type,
    entry,
    int_entry,
    list_entry,
)
from streamrl.data.replay_buffers.storages.base import Batch, Storage, _One

__all__ = ["LazyTensorStorage", "TensorStorage"]

# TensorDict's constructor validates every leaf; rows cut from the storage need no check. The
# unchecked constructor is private API of tensordict, so fall back to the public one.
_new_unsafe: Callable[..., TensorDictBase] = getattr(TensorDict, "_new_unsafe", TensorDict)

_COPY_CHUNK = 65536  # rows per copy when loading a checkpoint (bounds temporary memory)


def _fmt_key(key) -> str:
    return repr(key if not isinstance(key, tuple) or len(key) > 1 else key[0])


def _dtype_from_str(name: str) -> torch.dtype:
    dtype = getattr(torch, name.replace("torch.", ""), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return dtype


class LazyTensorStorage(Storage):
    """``max_size`` preallocated rows of a TensorDict (or of a tensor), on any device.

    Nothing is allocated until the first write, which fixes the schema: the keys, and for
    each key the per-item shape and dtype. Later batches must match it exactly, otherwise
    ``extend`` raises ``ValueError`` naming the key, what was expected and what was found,
    before anything is written. Batches with several batch dims (e.g. ``[envs, time]``) are
    flattened row-major, so each env's steps stay contiguous.

    Tensorclass instances and pytrees of tensors (dicts, lists, tuples, with a common leading
    dim) are stored as TensorDicts and read back as the same class or structure; the first
    write fixes which kind the storage holds.

    ``ReplayBuffer.add(td)`` stores ``td`` as ONE item, batch dims included: after
    ``add(TensorDict(..., [10]))`` each row is a ``[10]`` trajectory (``item_batch == (10,)``),
    reads return ``[n, 10]`` TensorDicts, and ``extend`` takes ``[..., 10]`` batches.

    Args:
        max_size: number of rows (elements: with ``ndim > 1``, a ``[B, T]`` batch takes
            ``B * T`` of them).
        device: where the rows live (default CPU).
        ndim: how many leading batch dims are storage dims (TorchRL's ``ndim``). With
            ``ndim=2`` each batch is ``[B, T, ...]`` with the ``T`` of the first write, its
            elements counted by ``len`` and sampled one by one; they are stored row after
            row (``shape`` is ``[max_size // T, T]``). ``add`` is refused (write rows with
            ``extend``).

    >>> s = LazyTensorStorage(1000)
    >>> from tensordict import TensorDict
    >>> from streamrl.data import ReplayBuffer
    >>> rb = ReplayBuffer(storage=LazyTensorStorage(100, ndim=2), batch_size=4)
    >>> _ = rb.extend(TensorDict({"x": torch.ones(4, 3)}, [4, 3]))
    >>> len(rb), rb.storage.shape, rb.sample().shape
    (12, torch.Size([33, 3]), torch.Size([4]))
    """

    def __init__(self, max_size: int, *, device: str | torch.device | None = None,
                 ndim: int = 1, compilable: bool = False) -> None:
        super().__init__(max_size, compilable=compilable)
        if isinstance(ndim, bool) or not isinstance(ndim, int) or ndim < 1:
            raise ValueError(f"ndim must be an int >= 1, found {ndim!r}")
        self.ndim = ndim
        self._store_dims: tuple[int, ...] | None = None  # batch dims 1..ndim-1, fixed
        self._pending_dims: tuple[int, ...] | None = None  # those of the batch last prepared
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._data: TensorDictBase | torch.Tensor | None = None
        self._keys: list[tuple[str, ...]] = []  # empty: tensor storage or unallocated
        self._leaves: list[torch.Tensor] = []
        self._is_td: bool | None = None
        self._key_set: set = set()
        self._item_batch: tuple[int, ...] = ()
        self._wrap: tuple | None = None  # ("tensorclass", cls) or ("pytree", treespec)

    def _default_checkpointer(self):
        from streamrl.data.replay_buffers.storages.checkpointers import TensorStorageCheckpointer

        return TensorStorageCheckpointer()

    @property
    def item_batch(self) -> tuple[int, ...]:
        """Batch dims of one stored TensorDict item (``()`` unless items were ``add``-ed whole)."""
        return self._item_batch

    # Length and head live in a shared tensor once the storage is shared across processes.
    @property
    def _len(self) -> int:
        cursor = self.__dict__.get("_shm_cursor")
        return int(cursor[0]) if cursor is not None else self.__dict__["_len0"]

    @_len.setter
    def _len(self, value: int) -> None:
        cursor = self.__dict__.get("_shm_cursor")
        if cursor is not None:
            cursor[0] = value
        else:
            self.__dict__["_len0"] = value

    @property
    def _head(self) -> int:
        cursor = self.__dict__.get("_shm_cursor")
        return int(cursor[1]) if cursor is not None else self.__dict__["_head0"]

    @_head.setter
    def _head(self, value: int) -> None:
        cursor = self.__dict__.get("_shm_cursor")
        if cursor is not None:
            cursor[1] = value
        else:
            self.__dict__["_head0"] = value

    def _share(self) -> None:
        """Move the rows and the cursor to shared memory (``ReplayBuffer(shared=True)``)."""
        if not self.allocated:
            raise ValueError(
                f"shared=True needs an allocated {type(self).__name__} (extend it once first, "
                "or use a LazyMemmapStorage, which other processes can allocate)"
            )
        if self.device.type != "cpu":
            raise ValueError(f"shared=True needs a CPU storage, found device {self.device}")
        for leaf in self._leaves:
            leaf.share_memory_()
        cursor = torch.tensor([self._len, self._head], dtype=torch.int64).share_memory_()
        self.__dict__["_shm_cursor"] = cursor

    # -- schema -----------------------------------------------------------------------------
    @property
    def allocated(self) -> bool:
        """Whether the first write has fixed the schema."""
        return self._is_td is not None

    def schema(self) -> dict[tuple[str, ...], tuple[tuple[int, ...], torch.dtype]]:
        """``{key: (item_shape, dtype)}`` (key ``()`` for a tensor storage); empty if unallocated."""
        if not self.allocated:
            return {}
        keys: list[tuple[str, ...]] = self._keys if self._is_td else [()]
        return {k: (tuple(t.shape[1:]), t.dtype) for k, t in zip(keys, self._leaves)}

    @staticmethod
    def _flat_items(td: TensorDictBase) -> dict[tuple[str, ...], torch.Tensor]:
        out: dict[tuple[str, ...], torch.Tensor] = {}
        for key, value in td.items(include_nested=True, leaves_only=True):
            flat_key = key if isinstance(key, tuple) else (key,)
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"tensor storages hold tensor leaves only; key {_fmt_key(flat_key)} holds a "
                    f"{type(value).__name__}"
                )
            out[flat_key] = value
        return out

    # -- writing ----------------------------------------------------------------------------
    # -- tensorclasses and pytrees ------------------------------------------------------------
    @staticmethod
    def _is_tree(data) -> bool:
        return isinstance(data, (dict, list, tuple)) and not isinstance(data, TensorDictBase)

    def _as_td(self, data, one: bool):
        """``(TensorDict or tensor, wrap)`` for a TensorDict, tensor, tensorclass or pytree."""
        if is_tensorclass(data):
            return data._tensordict, ("tensorclass", type(data))
        if self._is_tree(data):
            leaves, spec = pytree.tree_flatten(data)
            bad = [type(x).__name__ for x in leaves if not isinstance(x, torch.Tensor)]
            if bad or not leaves:
                raise TypeError(
                    f"{type(self).__name__} stores pytrees of tensors, found leaves of type "
                    f"{bad or 'none'}"
                )
            if one:
                batch: list[int] = []
            else:
                k = self.ndim
                if any(x.ndim < k for x in leaves):
                    raise ValueError(
                        f"extend: every pytree leaf needs {k} batch dim(s) (use add())")
                sizes = {tuple(x.shape[:k]) for x in leaves}
                if len(sizes) != 1:
                    dims = "first dim" if k == 1 else f"first {k} dims"
                    raise ValueError(
                        f"extend: pytree leaves must share their {dims}, found {sorted(sizes)}"
                    )
                batch = list(leaves[0].shape[:k])
            td = TensorDict({str(i): x for i, x in enumerate(leaves)}, batch_size=batch)
            return td, ("pytree", spec)
        return data, None

    def _unwrap(self, out):
        wrap = self._wrap
        if wrap is None or not isinstance(out, TensorDictBase):
            return out
        if wrap[0] == "tensorclass":
            return wrap[1]._from_tensordict(out)
        return pytree.tree_unflatten([out.get(str(i)) for i in range(len(out.keys()))], wrap[1])

    def _check_wrap(self, wrap) -> None:
        if not self.allocated:
            return
        mine = self._wrap
        if (mine is None) != (wrap is None) or (
            mine is not None and wrap is not None and (mine[0] != wrap[0] or (
                mine[0] == "tensorclass" and mine[1] is not wrap[1]))
        ):
            def name(w):
                if w is None:
                    return "TensorDicts or tensors"
                return f"{w[1].__name__} tensorclasses" if w[0] == "tensorclass" else "pytrees"
            raise TypeError(f"this storage holds {name(mine)}, found {name(wrap)}")

    def _wrap_state(self):
        wrap = self._wrap
        if wrap is None:
            return None
        if wrap[0] == "pytree":
            return ["pytree", pytree.treespec_dumps(wrap[1])]
        return ["tensorclass", f"{wrap[1].__module__}.{wrap[1].__qualname__}"]

    def _wrap_from_state(self, state) -> tuple | None:
        # A pytree structure reloads from its JSON; a tensorclass is not imported by name
        # (loading runs no code): an allocated storage keeps its class, a new one reads
        # TensorDicts.
        if state is None:
            return None
        if not isinstance(state, list) or len(state) != 2 or not all(
            isinstance(s, str) for s in state
        ) or state[0] not in ("pytree", "tensorclass"):
            raise ValueError(f"'wrap' must be None, ['pytree', spec] or ['tensorclass', name], "
                             f"found {state!r}")
        if state[0] == "pytree":
            try:
                return ("pytree", pytree.treespec_loads(state[1]))
            except Exception as err:  # the JSON parser's errors vary with torch versions
                raise ValueError(f"'wrap' holds an unreadable pytree spec: {err}") from None
        if self._wrap is None or self._wrap[0] != "tensorclass":
            return None
        return self._wrap

    def one(self, item):
        """Wrap one item: a tensor gets a leading dim of 1, a TensorDict keeps its batch dims."""
        if self.ndim > 1:
            raise ValueError(
                f"add() writes one item; a storage with ndim={self.ndim} takes batches of "
                f"{self.ndim} storage dims: use extend()"
            )
        if isinstance(item, TensorDictBase) or is_tensorclass(item) or self._is_tree(item):
            return _One(item)
        if isinstance(item, torch.Tensor):
            return item.unsqueeze(0)
        raise TypeError(
            f"{type(self).__name__} holds TensorDicts or tensors, found {type(item).__name__}"
        )

    def prepare(self, data) -> Batch:
        """Flatten the batch dims and validate against the schema (nothing is written)."""
        item_batch: tuple[int, ...] | None = None
        wrap = None
        if isinstance(data, _One):
            item, wrap = self._as_td(data.item, one=True)
            item_batch = tuple(item.batch_size)
            data = item.unsqueeze(0)
        elif not isinstance(data, (TensorDictBase, torch.Tensor)):
            data, wrap = self._as_td(data, one=False)
        if self.ndim > 1:
            self._check_store_dims(data)
        if wrap is not None or self._wrap is not None:
            self._check_wrap(wrap)
        return self._prepare(data, item_batch, wrap)

    def _check_store_dims(self, data) -> None:
        """With ``ndim > 1``: the batch's first ``ndim`` dims are storage dims, and dims
        ``1 .. ndim - 1`` must be those of the first write."""
        shape = tuple(data.batch_size if isinstance(data, TensorDictBase) else data.shape)
        if len(shape) < self.ndim:
            raise ValueError(
                f"extend: a storage with ndim={self.ndim} takes batches of at least {self.ndim} "
                f"dims, found batch size {list(shape)}"
            )
        dims = shape[1 : self.ndim]
        if self._store_dims is not None and dims != self._store_dims:
            raise ValueError(
                f"extend: this storage's dims 1..{self.ndim - 1} are {list(self._store_dims)}, "
                f"found a batch of size {list(shape)}"
            )
        self._pending_dims = dims

    @property
    def shape(self) -> torch.Size:
        """The storage dims: ``[max_size]``, or with ``ndim > 1`` (once written)
        ``[max_size // row, *row]`` where ``row`` are dims ``1 .. ndim - 1`` of the batches."""
        dims = self._store_dims
        if self.ndim == 1 or dims is None:
            return torch.Size([self.max_size])
        row = 1
        for d in dims:
            row *= d
        return torch.Size([self.max_size // row, *dims])

    def _prepare_slots(self, data, n: int) -> Batch:
        """``set``'s batch: a TensorDict (tensorclass, pytree) whose first dim is the ``n``
        slots keeps its other batch dims as the items' own."""
        td, wrap = (data, None) if isinstance(data, TensorDictBase) else (
            self._as_td(data, one=False) if not isinstance(data, torch.Tensor) else (data, None))
        if isinstance(td, TensorDictBase) and td.batch_dims > 1 and td.batch_size[0] == n and (
            not self.allocated or td.batch_dims == 1 + len(self._item_batch)
        ):
            if wrap is not None or self._wrap is not None:
                self._check_wrap(wrap)
            return self._prepare(td, tuple(td.batch_size[1:]), wrap)
        return self.prepare(data)

    def _prepare(self, data, item_batch, wrap) -> Batch:
        if isinstance(data, TensorDictBase):
            if data.batch_dims == 0:
                raise ValueError(
                    "extend expects a TensorDict with a batch dim, found batch_size=[] "
                    "(use add() for one item)"
                )
            expected = self._item_batch
            if item_batch is None and not expected:
                if data.batch_dims > 1:
                    data = data.reshape(-1)
            elif item_batch is None:
                k = len(expected)
                if tuple(data.batch_size[data.batch_dims - k :]) != expected or (
                    data.batch_dims <= k
                ):
                    raise ValueError(
                        f"extend: this storage holds items of batch size {list(expected)}, "
                        f"found a batch of batch size {list(data.batch_size)} (expected "
                        f"{['n', *expected]})"
                    )
                item_batch = expected
                if data.batch_dims > 1 + k:
                    data = data.reshape(-1, *expected)
            elif self.allocated and item_batch != expected:
                raise ValueError(
                    f"add: this storage holds items of batch size {list(expected)}, found an "
                    f"item of batch size {list(item_batch)}"
                )
            n = data.batch_size[0]
            flat = self._flat_items(data)
            if self._is_td is False:
                raise TypeError("this storage holds tensors, found a TensorDict")
            if not self.allocated:
                return Batch(n, data, None, wrap)
            missing = [k for k in self._keys if k not in flat]
            extra = [k for k in flat if k not in self._key_set]
            if missing or extra:
                parts = []
                if missing:
                    parts.append("missing key(s) " + ", ".join(_fmt_key(k) for k in missing))
                if extra:
                    parts.append("unexpected key(s) " + ", ".join(_fmt_key(k) for k in extra))
                raise ValueError("extend: batch does not match the storage: " + "; ".join(parts))
            leaves = [flat[k] for k in self._keys]
            for key, src, dst in zip(self._keys, leaves, self._leaves):
                if src.shape[1:] != dst.shape[1:] or src.dtype != dst.dtype:
                    raise ValueError(
                        f"extend: key {_fmt_key(key)} expected item shape {tuple(dst.shape[1:])} "
                        f"and dtype {dst.dtype}, found item shape {tuple(src.shape[1:])} and "
                        f"dtype {src.dtype}"
                    )
            return Batch(n, data, leaves, wrap)
        if isinstance(data, torch.Tensor):
            if data.ndim == 0:
                raise ValueError("extend expects a tensor with a batch dim, found a 0-d tensor")
            if self._is_td:
                raise TypeError("this storage holds TensorDicts, found a tensor")
            if not self.allocated:
                return Batch(data.shape[0], data, None)
            dst = self._leaves[0]
            if data.shape[1:] != dst.shape[1:] or data.dtype != dst.dtype:
                raise ValueError(
                    f"extend: expected item shape {tuple(dst.shape[1:])} and dtype {dst.dtype}, "
                    f"found item shape {tuple(data.shape[1:])} and dtype {data.dtype}"
                )
            return Batch(data.shape[0], data, [data])
        raise TypeError(
            f"{type(self).__name__} holds TensorDicts or tensors, found {type(data).__name__}"
        )

    def _new_leaf(self, index: int, key, shape: tuple[int, ...], dtype: torch.dtype):
        return torch.zeros(shape, dtype=dtype, device=self.device)

    def _allocate(self, schema: dict, is_td: bool, item_batch: tuple[int, ...] = ()) -> None:
        self._item_batch = tuple(item_batch)
        leaves = [
            self._new_leaf(i, key, (self.max_size, *shape), dtype)
            for i, (key, (shape, dtype)) in enumerate(schema.items())
        ]
        if is_td:
            self._keys = list(schema)
            self._key_set = set(self._keys)
            td = TensorDict(batch_size=[self.max_size, *self._item_batch], device=self.device)
            for key, leaf in zip(self._keys, leaves):
                td.set(key, leaf)
            self._data = td
            # TensorDict.set may copy (device casts): read back the tensors it holds.
            leaves = [td.get(k) for k in self._keys]
        else:
            self._data = leaves[0]
        self._leaves = leaves
        self._is_td = is_td

    def _allocate_from(self, data) -> None:
        if isinstance(data, TensorDictBase):
            schema = {k: (tuple(v.shape[1:]), v.dtype) for k, v in self._flat_items(data).items()}
            if not schema:
                raise ValueError("cannot allocate a storage from a TensorDict without leaves")
            self._allocate(schema, True, tuple(data.batch_size[1:]))
        else:
            self._allocate({(): (tuple(data.shape[1:]), data.dtype)}, False)

    def _put(self, index, batch: Batch, source, start, new_len) -> None:
        """Copy the rows in (two slice copies when ``start`` is given, else ``index_copy_``)."""
        if not self.allocated:
            self._wrap = batch.wrap
            self._allocate_from(batch.data)
            if self.ndim > 1:
                self._store_dims = self._pending_dims
        leaves = batch.leaves
        if leaves is None:
            if self._is_td:
                flat = self._flat_items(batch.data)
                leaves = [flat[k] for k in self._keys]
            else:
                leaves = [batch.data]
        if source is not None:
            leaves = [s[source.to(s.device)] for s in leaves]
        n = index.numel()
        if start is not None:
            first = min(n, self.max_size - start)
            for dst, src in zip(self._leaves, leaves):
                dst[start : start + first].copy_(src[:first])
                if first < n:
                    dst[: n - first].copy_(src[first:])
        else:
            dev_index = index.to(self.device)
            for dst, src in zip(self._leaves, leaves):
                dst.index_copy_(0, dev_index, src.to(dst.device))
        self._touched(n, contiguous=start is not None)
        self._advance(index, start, new_len)

    # -- reading ----------------------------------------------------------------------------
    def get(self, index):
        """Rows at ``index`` as a TensorDict (or tensor) with batch size ``[len(index)]``."""
        scalar = isinstance(index, int)
        out = self._read_rows(self._check_index(index))
        return self._unwrap(out[0] if scalar else out)

    def _read(self, index: torch.Tensor):
        """Rows at ``index``, which the caller guarantees is in range (samplers do)."""
        return self._unwrap(self._read_rows(index))

    def _read_rows(self, index: torch.Tensor):
        index = index.to(self.device)
        rows = [torch.index_select(t, 0, index) for t in self._leaves]
        self._touched(index.numel())
        if not self._is_td:
            return rows[0]
        nested: dict = {}
        for key, row in zip(self._keys, rows):
            node = nested
            for part in key[:-1]:
                node = node.setdefault(part, {})
            node[key[-1]] = row
        return self._build(nested, torch.Size([index.numel(), *self._item_batch]))

    def _build(self, nested: dict, batch_size: torch.Size):
        # The rows were cut from validated storage tensors: skip TensorDict's checks.
        for key, value in nested.items():
            if isinstance(value, dict):
                nested[key] = self._build(value, batch_size)
        return _new_unsafe(nested, batch_size=batch_size, device=self.device)

    def column(self, key) -> torch.Tensor:
        """The written rows of one key (a view)."""
        if not self._is_td:
            raise TypeError("column() needs a TensorDict storage")
        key = key if isinstance(key, tuple) else (key,)
        if key not in self._key_set:
            raise KeyError(f"key {_fmt_key(key)} not in the storage; keys: {self._keys}")
        return self._leaves[self._keys.index(key)][: self._len]

    def _touched(self, rows: int, contiguous: bool = False) -> None:
        """Hook for disk-backed storages to account for the pages a read or write touched."""

    # -- state ------------------------------------------------------------------------------
    def state_dict(self):
        """Written rows per key plus cursor (views of a full storage, copies otherwise)."""
        keys: list[tuple[str, ...]] = self._keys if self._is_td else [()] if self.allocated else []
        return {
            "type": type(self).__name__,
            "max_size": self.max_size,
            "len": self._len,
            "head": self._head,
            "is_td": self._is_td,
            "item_batch": list(self._item_batch),
            "wrap": self._wrap_state(),
            "keys": [list(k) for k in keys],
            "dtypes": [str(t.dtype) for t in self._leaves],
            "shapes": [list(t.shape[1:]) for t in self._leaves],
            "tensors": [self._rows_for_state(t) for t in self._leaves],
        }

    def _rows_for_state(self, leaf: torch.Tensor) -> torch.Tensor:
        # torch.save writes a view's whole underlying storage: copy the written rows when the
        # storage is not full, so a checkpoint holds len rows, not max_size.
        rows = leaf[: self._len]
        return rows.clone() if self._len < self.max_size else rows

    def _prepare_load(self, state) -> Commit:
        """Check :meth:`state_dict`'s output against this storage: type, ``max_size``, cursor,
        schema (that of the storage once allocated) and the rows' shapes and dtypes."""
        where = f"{type(self).__name__} state"
        check_type(state, ("LazyTensorStorage", "LazyMemmapStorage", "TensorStorage"), "storage")
        found = entry(state, "max_size", where)
        if found != self.max_size:
            raise ValueError(f"{where}: max_size {found!r}, this storage {self.max_size}")
        length = int_entry(state, "len", where, 0, self.max_size)
        head = int_entry(state, "head", where, 0, self.max_size - 1)
        is_td = entry(state, "is_td", where)
        try:
            wrap = self._wrap_from_state(state.get("wrap"))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        if is_td is None:
            if length:
                raise ValueError(f"{where}: no schema ('is_td' is None) but {length} rows")

            def commit_empty() -> None:
                self._wrap, self._len, self._head = wrap, length, head

            return commit_empty
        if not isinstance(is_td, bool):
            raise ValueError(f"{where}: 'is_td' must be a bool or None, found {is_td!r}")
        schema, item_batch = self._schema_from_state(state, is_td, where)
        if self.allocated and (
            self.schema() != schema or is_td != self._is_td or item_batch != self._item_batch
        ):
            raise ValueError(
                f"{where}: schema {schema} (items of batch size {list(item_batch)}) differs from "
                f"this storage's {self.schema()} (items of batch size {list(self._item_batch)})"
            )
        if not self.allocated:
            self._check_schema(schema)
        tensors = list_entry(state, "tensors", where, len(schema))
        for key, (shape, dtype), rows in zip(schema, schema.values(), tensors):
            what = f"{where}: rows of key {_fmt_key(key)}" if key else f"{where}: rows"
            check_tensor(rows, what, dtype=dtype)
            if tuple(rows.shape[1:]) != shape or rows.shape[0] < length:
                raise ValueError(f"{what} must have shape ({length}, *{shape}), found "
                                 f"{tuple(rows.shape)}")

        def commit() -> None:
            self._wrap = wrap
            if not self.allocated:
                self._allocate(schema, is_td, item_batch)
            for dst, src in zip(self._leaves, tensors):
                for lo in range(0, length, _COPY_CHUNK):
                    hi = min(length, lo + _COPY_CHUNK)
                    dst[lo:hi].copy_(src[lo:hi])
                    self._touched(hi - lo, contiguous=True)
            self._len, self._head = length, head

        return commit

    @staticmethod
    def _schema_from_state(state, is_td: bool, where: str):
        """``(schema, item_batch)`` of a state, checked for well-formedness."""
        keys = list_entry(state, "keys", where)
        shapes = list_entry(state, "shapes", where, len(keys))
        dtypes = list_entry(state, "dtypes", where, len(keys))
        item_batch = state.get("item_batch", [])  # files from before items had batch dims: ()

        def dims(value) -> bool:
            return isinstance(value, list) and all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
            )

        if not dims(item_batch):
            raise ValueError(f"{where}: 'item_batch' must be a list of ints, found {item_batch!r}")
        if not is_td and keys != [[]]:
            raise ValueError(f"{where}: a tensor storage has one key [], found {keys!r}")
        schema = {}
        for key, shape, dtype in zip(keys, shapes, dtypes):
            if not isinstance(key, list) or not all(isinstance(k, str) and k for k in key) or (
                is_td and not key
            ):
                raise ValueError(f"{where}: a key must be a list of names, found {key!r}")
            if not dims(shape) or tuple(shape[: len(item_batch)]) != tuple(item_batch):
                raise ValueError(f"{where}: key {key} has shape {shape!r}, expected a list of "
                                 f"ints starting with the item batch size {item_batch}")
            if not isinstance(dtype, str):
                raise ValueError(f"{where}: key {key} has dtype {dtype!r}, expected a str")
            schema[tuple(key)] = (tuple(shape), _dtype_from_str(dtype))
        if len(schema) != len(keys):
            raise ValueError(f"{where}: repeated keys in {keys}")
        for key in schema:
            if any(key[:i] in schema for i in range(1, len(key))):
                raise ValueError(f"{where}: key {list(key)} is nested under another leaf")
        return schema, tuple(item_batch)

    def _check_schema(self, schema: dict) -> None:
        """Refuse a schema this storage cannot allocate (before anything is changed)."""
        if not schema:
            raise ValueError(f"{type(self).__name__} state: a schema without keys")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_size={self.max_size}, len={self._len}, device={self.device})"


class TensorStorage(LazyTensorStorage):
    """A tensor storage over existing data: a tensor or TensorDict whose first dim is the slots.

    The storage starts full (``len(storage) == storage_data.shape[0]``) and uses the given
    tensors in place (no copy, unless ``device`` differs): a buffer over a dataset that is
    already in memory. A TensorDict without tensors (``TensorDict(batch_size=[n])``) gives
    ``n`` empty slots instead, whose first write fixes the keys, as in a
    :class:`LazyTensorStorage`. Writes overwrite slots round-robin, as in any storage; pair it with an
    :class:`ImmutableDatasetWriter` to forbid them. Extra batch dims of a TensorDict belong to
    each item (``TensorStorage(TensorDict(..., [10, 11]))`` holds 10 items of batch ``[11]``).

    Args:
        storage: the data (a tensor or TensorDict with at least one dim).
        max_size: the number of slots; must equal ``storage.shape[0]`` when given.
        device: where the rows live (default CPU).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> s = TensorStorage(TensorDict({"x": torch.randn(10, 11)}, [10, 11]))
    >>> len(s), s.get(0).batch_size
    (10, torch.Size([11]))
    """

    def __init__(
        self,
        storage: torch.Tensor | TensorDictBase,
        max_size: int | None = None,
        *,
        device: str | torch.device = "cpu",
        compilable: bool = False,
    ) -> None:
        if not isinstance(storage, (torch.Tensor, TensorDictBase)):
            raise TypeError(
                f"TensorStorage wraps a tensor or a TensorDict, found {type(storage).__name__}"
            )
        if storage.ndim == 0 if isinstance(storage, torch.Tensor) else storage.batch_dims == 0:
            raise ValueError("TensorStorage needs data with a leading dim (the slots)")
        n = storage.shape[0]
        if max_size is not None and max_size != n:
            raise ValueError(
                f"max_size must equal the first dim of the data ({n}), found {max_size!r}"
            )
        super().__init__(n, device=device, compilable=compilable)
        data = storage.to(self.device)
        if isinstance(data, TensorDictBase):
            flat = self._flat_items(data)
            if not flat:
                # no tensors yet: n empty slots, whose first write fixes the keys
                self._item_batch = tuple(data.batch_size[1:])
                self._len = 0
                self._head = 0
                return
            self._keys = list(flat)
            self._key_set = set(self._keys)
            self._leaves = [flat[k] for k in self._keys]
            self._item_batch = tuple(data.batch_size[1:])
            self._data = data
            self._is_td = True
        else:
            self._leaves = [data]
            self._data = data
            self._is_td = False
        self._len = n
        self._head = 0

    def state_dict(self):
        """As :meth:`LazyTensorStorage.state_dict`."""
        return {**super().state_dict(), "type": "TensorStorage"}
