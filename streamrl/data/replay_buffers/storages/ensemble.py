"""StorageEnsemble: the member storages of a replay-buffer ensemble (read-only)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tensordict import TensorDictBase

from streamrl.data.replay_buffers._ensemble_state import members_state, prepare_members_state
from streamrl.data.replay_buffers._state import Commit
from streamrl.data.replay_buffers.storages.base import Storage

__all__ = ["StorageEnsemble"]


class StorageEnsemble:
    """The storages of an ensemble, each with an optional transform applied to what it reads.

    The ensemble does not write: write to a member (``ensemble[i]``) or through its
    :class:`ReplayBufferEnsemble`. :meth:`get` takes ``(buffer_id, index)`` and returns
    ``(buffer_id, items)``, or an index TensorDict from :meth:`SamplerEnsemble.sample` and
    returns one ``(buffer_id, items)`` pair per part.

    Args:
        *storages: the member :class:`Storage` objects.
        transforms: one callable (or ``None``) per storage, applied to the items it reads.

    >>> import torch
    >>> from streamrl.data import LazyTensorStorage, ReplayBuffer
    >>> a, b = ReplayBuffer(storage=LazyTensorStorage(4)), ReplayBuffer(storage=LazyTensorStorage(4))
    >>> _ = a.extend(torch.arange(3)), b.extend(torch.arange(3))
    >>> ens = StorageEnsemble(a.storage, b.storage, transforms=[None, lambda x: x + 10])
    >>> ens.get((1, torch.tensor([0, 2])))
    (1, tensor([10, 12]))
    """

    def __init__(
        self, *storages: Storage, transforms: Sequence[Callable | None] | None = None
    ) -> None:
        if not storages:
            raise ValueError("StorageEnsemble needs at least one storage")
        for i, storage in enumerate(storages):
            if not isinstance(storage, Storage):
                raise TypeError(f"member {i} must be a Storage, found {type(storage).__name__}")
        if transforms is None:
            transforms = [None] * len(storages)
        transforms = list(transforms)
        if len(transforms) != len(storages):
            raise ValueError(
                f"transforms must hold one entry per storage ({len(storages)}), found "
                f"{len(transforms)}"
            )
        for i, fn in enumerate(transforms):
            if fn is not None and not callable(fn):
                raise TypeError(f"transform {i} must be callable or None, found {fn!r}")
        self._storages = tuple(storages)
        self.transforms = transforms

    def __len__(self) -> int:
        """Number of member storages."""
        return len(self._storages)

    def __getitem__(self, index: int) -> Storage:
        """The ``index``-th member storage."""
        return self._storages[index]

    def __repr__(self) -> str:
        return f"StorageEnsemble({', '.join(repr(s) for s in self._storages)})"

    def _get_one(self, buffer_id: int, index):
        if isinstance(buffer_id, bool) or not 0 <= int(buffer_id) < len(self._storages):
            raise IndexError(f"buffer id {buffer_id!r} out of range [0, {len(self._storages)})")
        buffer_id = int(buffer_id)
        items = self._storages[buffer_id].get(index)
        fn = self.transforms[buffer_id]
        return buffer_id, (fn(items) if fn is not None else items)

    def get(self, index):
        """``(buffer_id, items)`` for ``(buffer_id, index)``; a list of them for an index TD."""
        if isinstance(index, TensorDictBase):
            return [
                self._get_one(int(i), idx)
                for i, idx in zip(index["buffer_ids"].tolist(), index["index"])
            ]
        if not isinstance(index, tuple) or len(index) != 2:
            raise TypeError(
                "StorageEnsemble.get takes (buffer_id, index) or the index TensorDict of "
                f"SamplerEnsemble.sample, found {type(index).__name__}"
            )
        return self._get_one(*index)

    def empty(self) -> None:
        """Empty every member storage."""
        for storage in self._storages:
            storage.empty()

    def close(self) -> None:
        """Close every member storage; idempotent."""
        for storage in self._storages:
            storage.close()

    def state_dict(self) -> dict:
        """The members' states."""
        return members_state("StorageEnsemble", self._storages)

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` into members of the same types (all or nothing)."""
        self._prepare_load(state)()

    def _prepare_load(self, state: dict) -> Commit:
        return prepare_members_state(state, "StorageEnsemble", self._storages)
