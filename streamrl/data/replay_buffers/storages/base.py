"""The storage interface: a fixed number of slots, written by index, read by index."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

__all__ = ["Batch", "Storage"]


class _One(NamedTuple):
    """One item handed to :meth:`Storage.prepare` by ``ReplayBuffer.add``.

    A TensorDict item keeps its own batch dims (a ``[10]`` TensorDict is one item of 10 steps),
    where ``extend`` would split them into rows.
    """

    item: Any


class Batch(NamedTuple):
    """A validated batch: ``n`` items, the (normalized) data, its leaves in storage key order.

    ``wrap`` says how the caller's data was turned into a TensorDict (tensorclass or pytree),
    so that reads can turn rows back into the same kind of object.
    """

    n: int
    data: Any
    leaves: list[torch.Tensor] | None
    wrap: Any = None


def _check_max_size(max_size) -> int:
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size <= 0:
        raise ValueError(f"max_size must be a positive int, found {max_size!r}")
    return max_size


def check_compilable(compilable: object) -> bool:
    """TorchRL's ``compilable`` flag of storages, writers and buffers: streamrl keeps their
    counters as plain Python ints either way (TorchRL's compilable layout); ``True`` also
    promises the object is not shared across processes (``ReplayBuffer(shared=True)``
    refuses it)."""
    if not isinstance(compilable, bool):
        raise TypeError(f"compilable must be a bool, found {type(compilable).__name__}")
    return compilable


class Storage:
    """Base class of storages.

    A storage has ``max_size`` slots; ``len(storage)`` slots (``0 .. len - 1``) hold data.
    Writers decide where to write; the buffer reads with :meth:`get`; :meth:`set` writes
    at given slots directly (as TorchRL's storages do). ``head`` is the slot after the
    last one written (where a circular writer goes on).
    Writes go through :meth:`prepare` (validate, no side effects) then ``_put``.
    """

    def __init__(self, max_size: int, *, compilable: bool = False) -> None:
        self.max_size = _check_max_size(max_size)
        self.compilable = check_compilable(compilable)
        self._len = 0
        self._head = 0

    def __len__(self) -> int:
        return self._len

    @property
    def head(self) -> int:
        """The slot after the most recent write (mod ``max_size``)."""
        return self._head

    # -- interface --------------------------------------------------------------------------
    def one(self, item):
        """Wrap a single item so that :meth:`count` gives 1."""
        raise NotImplementedError

    def prepare(self, data) -> Batch:
        """Normalize and validate ``data``; raise ``ValueError``/``TypeError``; never writes."""
        raise NotImplementedError

    def set(self, cursor, data, *, set_cursor: bool = True) -> None:
        """Write ``data`` at the slots ``cursor`` (TorchRL's storage-level write).

        ``cursor`` is an int (``data`` is then one item), a sequence or tensor of ints, or a
        slice of the ``max_size`` slots; ``data`` holds one item per slot. With
        ``set_cursor=True`` the storage's length grows to cover the slots and the write head
        moves after the last one; with ``False`` both stay (e.g. to fill the slots in
        advance). A sampler or writer of a buffer over this storage does not see the write.
        """
        index = self._cursor_index(cursor)
        if isinstance(cursor, int):
            batch = self.prepare(self.one(data))
        else:
            batch = self._prepare_slots(data, index.numel())
        if batch.n != index.numel():
            raise ValueError(
                f"set: {index.numel()} slot(s) given for a batch of {batch.n} item(s)"
            )
        if batch.n == 0:
            return
        length, head = self._len, self._head
        new_len = max(length, int(index.max()) + 1) if set_cursor else length
        self._put(index, batch, None, None, new_len)
        if not set_cursor:
            self._head = head

    def _prepare_slots(self, data, n: int) -> Batch:
        """:meth:`prepare` for :meth:`set` at ``n`` slots (a storage whose items may have batch
        dims of their own reads ``data``'s first dim as the slots)."""
        return self.prepare(data)

    def _cursor_index(self, cursor) -> torch.Tensor:
        if isinstance(cursor, slice):
            return torch.arange(self.max_size)[cursor]
        if isinstance(cursor, bool):
            raise TypeError(f"cursor must be an int, ints or a slice, found {cursor!r}")
        if isinstance(cursor, int):
            cursor = [cursor]
        elif isinstance(cursor, range):
            cursor = list(cursor)
        index = torch.as_tensor(cursor)
        if index.dtype == torch.bool or index.is_floating_point():
            raise TypeError(f"cursor must hold integers, found dtype {index.dtype}")
        index = index.reshape(-1).to(torch.long).cpu()
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.max_size):
            raise IndexError(
                f"cursor {index.tolist()} out of the storage's slots [0, {self.max_size})"
            )
        return index

    def _put(
        self,
        index: torch.Tensor,
        batch: Batch,
        source: torch.Tensor | None,
        start: int | None,
        new_len: int,
    ) -> None:
        """Write items ``source`` (all when ``None``) of ``batch`` to slots ``index``.

        ``start`` is given when ``index == (start + arange(n)) % max_size``.
        """
        raise NotImplementedError

    def get(self, index):
        """Read the items at ``index`` (int64 tensor, or int); ``IndexError`` if out of range."""
        raise NotImplementedError

    def __getitem__(self, index):
        """``storage[index]`` is :meth:`get` (an int, a slice, or an index tensor), as in
        TorchRL."""
        return self.get(index)

    def __iter__(self):
        """The stored items, one at a time, in slot order."""
        for i in range(len(self)):
            yield self.get(i)

    def _read(self, index: torch.Tensor):
        """Like :meth:`get` for an index the caller guarantees is in range."""
        return self.get(index)

    def empty(self) -> None:
        """Forget the content (``len`` becomes 0)."""
        self._len = 0
        self._head = 0

    def state_dict(self) -> dict[str, Any]:
        """Content and cursor, as tensors and plain Python values (weights_only-loadable)."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a state that does not fit raises ``ValueError`` and
        changes nothing."""
        self._prepare_load(state)()

    def _prepare_load(self, state: dict[str, Any]) -> Callable[[], None]:
        """Check :meth:`state_dict`'s output and build what loading needs, without changing
        the storage; return the commit that applies it (see
        ``streamrl.data.replay_buffers._state``)."""
        raise NotImplementedError

    # -- checkpointing ----------------------------------------------------------------------
    @property
    def checkpointer(self):
        """How :meth:`dumps` writes this storage (a ``StorageCheckpointerBase``).

        ``None`` (the default) until set or until a hook is registered: :meth:`dumps` then uses
        the checkpointer of the storage's type, and ``ReplayBuffer.dumps`` writes one file.
        """
        return self.__dict__.get("_checkpointer")

    @checkpointer.setter
    def checkpointer(self, value) -> None:
        from streamrl.data.replay_buffers.storages.checkpointers import StorageCheckpointerBase

        if value is not None and not isinstance(value, StorageCheckpointerBase):
            raise TypeError(
                f"checkpointer must be a StorageCheckpointerBase or None, found "
                f"{type(value).__name__}"
            )
        self.__dict__["_checkpointer"] = value

    def _default_checkpointer(self):
        raise TypeError(f"{type(self).__name__} has no default checkpointer: set one")

    def _checkpointer_or_default(self):
        checkpointer = self.checkpointer
        return checkpointer if checkpointer is not None else self._default_checkpointer()

    def register_save_hook(self, hook) -> None:
        """Run ``hook`` on the data :meth:`dumps` writes (sets the default checkpointer)."""
        checkpointer = self._checkpointer_or_default()
        checkpointer.register_save_hook(hook)
        self.checkpointer = checkpointer

    def register_load_hook(self, hook) -> None:
        """Run ``hook`` on the data :meth:`loads` reads (sets the default checkpointer)."""
        checkpointer = self._checkpointer_or_default()
        checkpointer.register_load_hook(hook)
        self.checkpointer = checkpointer

    def dumps(self, path: str | os.PathLike) -> None:
        """Write this storage to the directory ``path`` with its checkpointer."""
        self._checkpointer_or_default().dumps(self, path)

    def loads(self, path: str | os.PathLike) -> None:
        """Read the directory ``path`` (written by :meth:`dumps`) into this storage; a
        checkpoint that does not fit raises ``ValueError`` and changes nothing."""
        self._prepare_loads(path)()

    def _prepare_loads(self, path: str | os.PathLike) -> Callable[[], None]:
        """:meth:`loads` up to the commit (see :meth:`_prepare_load`)."""
        return self._checkpointer_or_default()._prepare_loads(self, path)

    def _share(self) -> None:
        """Make the content visible to other processes (``ReplayBuffer(shared=True)``)."""
        raise TypeError(
            f"shared=True needs a tensor storage (LazyMemmapStorage, or an allocated "
            f"LazyTensorStorage / TensorStorage), found {type(self).__name__}"
        )

    def close(self) -> None:
        """Release resources (files, maps); idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- helpers ----------------------------------------------------------------------------
    def _advance(self, index: torch.Tensor, start: int | None, new_len: int) -> None:
        self._len = new_len
        if start is not None:
            self._head = (start + index.numel()) % self.max_size
        elif index.numel():
            self._head = (int(index[-1]) + 1) % self.max_size

    def _check_index(self, index) -> torch.Tensor:
        if isinstance(index, slice):
            return torch.arange(self._len)[index]
        if isinstance(index, int):
            index = torch.tensor([index])
        elif not isinstance(index, torch.Tensor):
            index = torch.as_tensor(index)
        if index.dtype == torch.bool or index.is_floating_point():
            raise TypeError(f"index must be an integer tensor, found dtype {index.dtype}")
        if index.numel():
            lo, hi = int(index.min()), int(index.max())
            if lo < 0 or hi >= self._len:
                bad = lo if lo < 0 else hi
                raise IndexError(f"index {bad} out of range [0, {self._len})")
        return index
