"""A circular list of arbitrary Python objects."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from streamrl.data.replay_buffers._state import Commit, check_type, entry, int_entry, list_entry
from streamrl.data.replay_buffers.checkpoint import from_safe, to_safe
from streamrl.data.replay_buffers.storages.base import Batch, Storage

__all__ = ["ListStorage"]


class ListStorage(Storage):
    """Store any Python objects in a list of ``max_size`` slots.

    ``extend`` takes any iterable (a TensorDict or tensor is split along its first dim);
    ``get`` returns a list, which the buffer's ``collate_fn`` turns into a batch. Checkpoints
    only hold what can be saved without pickle (tensors, TensorDicts, numbers, strings,
    ``None`` and lists/tuples/str-keyed dicts of them); other objects raise ``TypeError``.

    >>> s = ListStorage(10)
    """

    def __init__(self, max_size: int = 1000, *, compilable: bool = False) -> None:
        super().__init__(max_size, compilable=compilable)
        self._items: list = []

    def _default_checkpointer(self):
        from streamrl.data.replay_buffers.storages.checkpointers import ListStorageCheckpointer

        return ListStorageCheckpointer()

    def one(self, item):
        """``[item]``."""
        return [item]

    def prepare(self, data) -> Batch:
        """Any objects fit; ``data`` must be a sequence (a TensorDict/tensor is unbound)."""
        if isinstance(data, (TensorDictBase, torch.Tensor)):
            if data.ndim == 0:
                raise ValueError("extend expects a batch dim (use add() for one item)")
            data = data.unbind(0)
        elif isinstance(data, (str, bytes)) or not hasattr(data, "__len__"):
            raise TypeError(
                f"extend expects a sequence of items (list, tuple, TensorDict, tensor), "
                f"found {type(data).__name__}"
            )
        data = list(data)
        return Batch(len(data), data, None)

    def _put(self, index, batch, source, start, new_len) -> None:
        """Write the items; the list grows up to ``max_size``."""
        data = batch.data
        if source is not None:
            data = [data[i] for i in source.tolist()]
        items = self._items
        for i, item in zip(index.tolist(), data):
            if i >= len(items):
                items.extend([None] * (i + 1 - len(items)))
            items[i] = item
        self._advance(index, start, new_len)

    def get(self, index):
        """The item at an int ``index``, else a list of the items at ``index``."""
        items = self._read(self._check_index(index))
        return items[0] if isinstance(index, int) else items

    def _read(self, index):
        """Items at ``index``, which the caller guarantees is in range."""
        items = self._items
        return [items[i] for i in index.tolist()]

    def empty(self) -> None:
        """Drop every item."""
        super().empty()
        self._items = []

    def state_dict(self):
        """Items converted to a pickle-free form; ``TypeError`` for unsupported objects."""
        items = []
        for i, item in enumerate(self._items[: self._len]):
            try:
                items.append(to_safe(item))
            except TypeError as err:
                raise TypeError(f"ListStorage item {i} cannot be checkpointed: {err}") from None
        return {
            "type": "ListStorage",
            "max_size": self.max_size,
            "len": self._len,
            "head": self._head,
            "items": items,
        }

    _state_type = "ListStorage"  # the "type" of :meth:`state_dict`

    def _prepare_load(self, state) -> Commit:
        where = f"{type(self).__name__} state"
        check_type(state, self._state_type, "storage")
        found = entry(state, "max_size", where)
        if found != self.max_size:
            raise ValueError(f"{where}: max_size {found!r}, this storage {self.max_size}")
        length = int_entry(state, "len", where, 0, self.max_size)
        head = int_entry(state, "head", where, 0, self.max_size - 1)
        raw = list_entry(state, "items", where, length)
        try:
            items = self._items_from_state([from_safe(x) for x in raw])
        except (TypeError, KeyError, IndexError, ValueError) as err:
            raise ValueError(f"{where}: malformed 'items' ({type(err).__name__}: {err})") from err

        def commit() -> None:
            self._items, self._len, self._head = items, length, head

        return commit

    def _items_from_state(self, items: list) -> list:
        """The stored items from those a state holds (after ``from_safe``)."""
        return items
