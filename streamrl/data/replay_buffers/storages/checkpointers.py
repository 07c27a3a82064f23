"""Storage checkpointers: how a storage is written to a directory and read back.

``storage.dumps(path)`` / ``storage.loads(path)`` use ``storage.checkpointer`` (by default the
one for the storage's type), and so does ``ReplayBuffer.dumps(path)`` once a checkpointer or a
hook is set on the storage (the buffer then writes a directory, see :class:`ReplayBuffer`).
Tensor checkpointers write the rows as memory-mapped files (tensordict's format, JSON
metadata), which save and load hooks may turn into another layout (:class:`TED2Flat` and
:class:`Flat2TED` for :class:`FlatStorageCheckpointer`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable
from typing import Any, cast

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.data.replay_buffers._state import entry, int_entry
from streamrl.data.replay_buffers.checkpoint import load_checkpoint, save_checkpoint
from streamrl.data.replay_buffers.storages.compressed_storage import CompressedListStorage
from streamrl.data.replay_buffers.storages.list_storage import ListStorage
from streamrl.data.replay_buffers.storages.tensor_storage import LazyTensorStorage
from streamrl.data.replay_buffers.ted_layouts import (
    Flat2TED,
    H5Combine,
    H5Split,
    Nested2TED,
    TED2Flat,
    TED2Nested,
)
from streamrl.data.replay_buffers.trajectories import DEFAULT_DONE_KEYS

__all__ = [
    "CompressedListStorageCheckpointer",
    "FlatStorageCheckpointer",
    "H5StorageCheckpointer",
    "ListStorageCheckpointer",
    "NestedStorageCheckpointer",
    "StorageCheckpointerBase",
    "TensorStorageCheckpointer",
]

_META = "storage_metadata.json"
_DATA = "data"
_TENSOR_KEY = "_tensor"  # the one leaf of a storage of plain tensors


def _replace_dir(build: Callable[[str], None], path: str) -> None:
    """Write a directory beside ``path`` with ``build(tmp)``, then move it to ``path``."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-storage-", dir=parent)
    try:
        build(tmp)
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_meta(path: str) -> dict[str, Any]:
    file = os.path.join(path, _META)
    if not os.path.isfile(file):
        raise FileNotFoundError(f"no storage checkpoint at {path!r} (missing {_META})")
    try:
        with open(file) as f:
            meta = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"the storage metadata {file!r} is not valid JSON: {err}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"the storage metadata {file!r} must hold a JSON object, found "
                         f"{type(meta).__name__}")
    return meta


def _checksums(directory: str) -> dict[str, int]:
    """``{relative path: CRC-32}`` of every file under ``directory``."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            file = os.path.join(root, name)
            out[os.path.relpath(file, directory)] = _crc32(file)
    return out


def _crc32(file: str) -> int:
    crc = 0
    with open(file, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


def _verify_checksums(path: str, recorded: Any, where: str) -> None:
    """Check the files ``dumps`` recorded (checkpoints written before checksums: none)."""
    if recorded is None:
        return
    if not isinstance(recorded, dict):
        raise ValueError(f"{where}: 'crc32' must map files to checksums, found {recorded!r}")
    for rel, crc in recorded.items():
        file = os.path.normpath(os.path.join(path, rel))
        if not isinstance(rel, str) or os.path.isabs(rel) or not file.startswith(
            os.path.normpath(path) + os.sep
        ):
            raise ValueError(f"{where}: 'crc32' names a file outside the checkpoint: {rel!r}")
        if not os.path.isfile(file):
            raise ValueError(f"{where}: the file {rel!r} is missing")
        if _crc32(file) != crc:
            raise ValueError(f"{where}: the file {rel!r} fails its CRC check (corrupted)")


class StorageCheckpointerBase:
    """Base class of storage checkpointers: :meth:`dumps` and :meth:`loads` a storage.

    Save hooks run, in order, on what is written (``hook(data) -> data``); load hooks on what
    is read, before it goes into the storage. Checkpointers that cannot run hooks say so.

    >>> import tempfile, torch
    >>> from streamrl.data import LazyTensorStorage, ReplayBuffer
    >>> rb = ReplayBuffer(storage=LazyTensorStorage(8))
    >>> _ = rb.extend(torch.arange(5))
    >>> ckpt = TensorStorageCheckpointer()
    >>> with tempfile.TemporaryDirectory() as d:
    ...     ckpt.dumps(rb.storage, d)
    ...     fresh = LazyTensorStorage(8)
    ...     ckpt.loads(fresh, d)
    >>> fresh.get(torch.arange(5)).tolist()
    [0, 1, 2, 3, 4]
    """

    def __init__(self) -> None:
        self._save_hooks: list[Callable] = []
        self._load_hooks: list[Callable] = []

    def register_save_hook(self, hook: Callable) -> None:
        """Run ``hook`` on the data before it is written."""
        if not callable(hook):
            raise TypeError(f"a save hook must be callable, found {type(hook).__name__}")
        self._save_hooks.append(hook)

    def register_load_hook(self, hook: Callable) -> None:
        """Run ``hook`` on the data read, before it enters the storage."""
        if not callable(hook):
            raise TypeError(f"a load hook must be callable, found {type(hook).__name__}")
        self._load_hooks.append(hook)

    def dumps(self, storage, path: str | os.PathLike) -> None:
        """Write ``storage`` to the directory ``path`` (replaced if it exists)."""
        raise NotImplementedError

    def loads(self, storage, path: str | os.PathLike) -> None:
        """Read the directory ``path`` into ``storage`` (same ``max_size``); a checkpoint
        that does not fit raises ``ValueError`` and leaves ``storage`` as it was."""
        self._prepare_loads(storage, path)()

    def _prepare_loads(self, storage, path: str | os.PathLike) -> Callable[[], None]:
        """Read and check the directory ``path``; return the commit that loads it into
        ``storage`` (see ``Storage._prepare_load``)."""
        raise NotImplementedError

    def _check(self, storage, cls: type) -> None:
        if not isinstance(storage, cls):
            raise TypeError(
                f"{type(self).__name__} checkpoints a {cls.__name__}, found "
                f"{type(storage).__name__}"
            )

    def _check_written_by(self, meta: dict[str, Any], path: str) -> None:
        if meta.get("checkpointer") != type(self).__name__:
            raise ValueError(
                f"the storage checkpoint at {path!r} was written by "
                f"{meta.get('checkpointer')!r}; load it with that checkpointer, not "
                f"{type(self).__name__}"
            )


class ListStorageCheckpointer(StorageCheckpointerBase):
    """Checkpoint a :class:`ListStorage`: its items in one pickle-free file.

    The directory holds ``storage.pt`` (read with ``torch.load(weights_only=True)``) and
    ``storage_metadata.json``; items must be tensors, TensorDicts, numbers, strings, ``None``
    or lists/tuples/str-keyed dicts of them. Hooks are not run (``ValueError`` if any).

    >>> import tempfile
    >>> from streamrl.data import ListStorage, ReplayBuffer
    >>> rb = ReplayBuffer(storage=ListStorage(4), collate_fn=lambda x: x)
    >>> _ = rb.extend(["a", "b"])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     ListStorageCheckpointer().dumps(rb.storage, d)
    ...     fresh = ListStorage(4)
    ...     ListStorageCheckpointer().loads(fresh, d)
    >>> fresh.get(1)
    'b'
    """

    _storage_type: type = ListStorage

    def _no_hooks(self) -> None:
        if self._save_hooks or self._load_hooks:
            raise ValueError(f"{type(self).__name__} does not run save or load hooks")

    def dumps(self, storage, path) -> None:
        """Write the items and cursor."""
        self._check(storage, self._storage_type)
        self._no_hooks()
        state = storage.state_dict()  # raises for items that need pickle, before any write

        def build(tmp: str) -> None:
            save_checkpoint(state, os.path.join(tmp, "storage.pt"))
            with open(os.path.join(tmp, _META), "w") as f:
                json.dump({"checkpointer": type(self).__name__, "type": state["type"]}, f)

        _replace_dir(build, os.fspath(path))

    def _prepare_loads(self, storage, path) -> Callable[[], None]:
        self._check(storage, self._storage_type)
        self._no_hooks()
        path = os.fspath(path)
        self._check_written_by(_read_meta(path), path)
        return storage._prepare_load(load_checkpoint(os.path.join(path, "storage.pt")))


class CompressedListStorageCheckpointer(ListStorageCheckpointer):
    """Checkpoint a :class:`CompressedListStorage`: its items stay compressed on disk.

    >>> import tempfile, torch
    >>> from streamrl.data import CompressedListStorage, ReplayBuffer
    >>> rb = ReplayBuffer(storage=CompressedListStorage(4))
    >>> _ = rb.extend(torch.zeros(2, 64))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     CompressedListStorageCheckpointer().dumps(rb.storage, d)
    ...     fresh = CompressedListStorage(4)
    ...     CompressedListStorageCheckpointer().loads(fresh, d)
    >>> fresh.get(1).shape
    torch.Size([64])
    """

    _storage_type = CompressedListStorage


class TensorStorageCheckpointer(StorageCheckpointerBase):
    """Checkpoint a tensor storage (:class:`LazyTensorStorage`, :class:`LazyMemmapStorage`,
    :class:`TensorStorage`): the written rows as memory-mapped files.

    The directory holds ``storage_metadata.json`` (size, cursor, schema) and ``data/`` (the
    rows, in storage order, as a memory-mapped TensorDict). Save hooks get the rows (a
    TensorDict ``[len]``; a hook with ``shift``/``is_full`` attributes first gets the storage's
    write head and fullness) and return what is written; load hooks turn what is read back into
    the rows. Loading copies the rows into the storage (allocating it if needed).

    See :class:`StorageCheckpointerBase` for an example.
    """

    def dumps(self, storage, path) -> None:
        """Write the rows (through the save hooks) and the metadata."""
        self._check(storage, LazyTensorStorage)
        state = storage.state_dict()
        meta = {k: v for k, v in state.items() if k != "tensors"}
        meta["checkpointer"] = type(self).__name__
        data = self._rows(state) if state["len"] else None
        if data is not None:
            for hook in self._save_hooks:
                if not state["is_td"]:
                    raise ValueError("save hooks need a TensorDict storage, found a tensor one")
                if hasattr(hook, "shift") and hasattr(hook, "is_full"):
                    hook.shift = state["head"]
                    hook.is_full = state["len"] == state["max_size"]
                data = hook(data)

        def build(tmp: str) -> None:
            if data is not None:
                self._write(data, tmp)
            # memory-mapped files carry no checksum: record one per file, checked by loads
            meta["crc32"] = _checksums(tmp)
            with open(os.path.join(tmp, _META), "w") as f:
                json.dump(meta, f)

        _replace_dir(build, os.fspath(path))

    @staticmethod
    def _rows(state: dict[str, Any]) -> TensorDict:
        n = state["len"]
        batch = [n, *state["item_batch"]] if state["is_td"] else [n]
        td = TensorDict(batch_size=batch)
        for key, rows in zip(state["keys"], state["tensors"]):
            td.set(tuple(key) if key else _TENSOR_KEY, rows)
        return td

    def _write(self, data: TensorDictBase, directory: str) -> None:
        data.memmap(os.path.join(directory, _DATA))

    def _read(self, directory: str) -> TensorDictBase:
        # allow_pickle=False: a non-tensor entry stored as a pickle is refused, not executed
        return TensorDict.load_memmap(os.path.join(directory, _DATA), allow_pickle=False)

    def _prepare_loads(self, storage, path) -> Callable[[], None]:
        """Read the rows (through the load hooks) and check them against ``storage``."""
        self._check(storage, LazyTensorStorage)
        path = os.fspath(path)
        meta = _read_meta(path)
        self._check_written_by(meta, path)
        where = f"the storage checkpoint at {path!r}"
        if entry(meta, "max_size", where) != storage.max_size:
            raise ValueError(
                f"{where} holds a storage of max_size {meta['max_size']}, this storage "
                f"has {storage.max_size}"
            )
        length = int_entry(meta, "len", where, 0, storage.max_size)
        _verify_checksums(path, meta.get("crc32"), where)
        is_td = entry(meta, "is_td", where)
        schema: dict = {}
        if is_td is not None:
            schema, _ = LazyTensorStorage._schema_from_state(meta, bool(is_td), where)
        tensors = []
        if length:
            try:
                data = self._read(path)
                for hook in self._load_hooks:
                    data = hook(data)
            except (OSError, RuntimeError, KeyError, TypeError) as err:
                raise ValueError(f"{where}: unreadable rows ({type(err).__name__}: {err})") from err
            for key, (shape, _) in schema.items():
                value = data.get(key if key else _TENSOR_KEY, None)
                if value is None:
                    raise ValueError(f"{where} has no rows for key {list(key)}")
                if value.numel() != length * math.prod(shape):
                    raise ValueError(f"{where}: key {list(key)} holds {value.numel()} values, "
                                     f"expected {length} rows of shape {list(shape)}")
                tensors.append(value.reshape(length, *shape))
        else:
            tensors = [torch.empty((0, *shape), dtype=dtype) for shape, dtype in schema.values()]
        return storage._prepare_load({**meta, "type": "LazyTensorStorage", "tensors": tensors})


class FlatStorageCheckpointer(TensorStorageCheckpointer):
    """A :class:`TensorStorageCheckpointer` that writes TED data in :class:`TED2Flat`'s layout.

    Each trajectory's observations are written once (plus its final next observation), the
    ``"next"`` done flags and rewards at the root; :class:`Flat2TED` restores the rows. The
    layout assumes (and does not check) that root done flags are False and that next
    observations are the following step's, inside a trajectory.

    Args:
        done_keys: the done flags (default :data:`DEFAULT_DONE_KEYS`).
        reward_keys: the rewards (default ``("reward",)``).

    >>> import tempfile, torch
    >>> from tensordict import TensorDict
    >>> from streamrl.data import LazyTensorStorage, ReplayBuffer
    >>> done = torch.tensor([[False], [True], [False]])
    >>> ted = TensorDict({"obs": torch.tensor([0., 1., 10.]), "done": torch.zeros_like(done),
    ...     "next": {"obs": torch.tensor([1., 2., 11.]), "done": done}}, [3])
    >>> storage = LazyTensorStorage(8)
    >>> storage.checkpointer = FlatStorageCheckpointer(done_keys=("done",))
    >>> rb = ReplayBuffer(storage=storage)
    >>> _ = rb.extend(ted)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     storage.dumps(d)
    ...     fresh = LazyTensorStorage(8)
    ...     fresh.checkpointer = FlatStorageCheckpointer(done_keys=("done",))
    ...     fresh.loads(d)
    >>> fresh.get(torch.arange(3))["next", "obs"].tolist()
    [1.0, 2.0, 11.0]
    """

    _save_layout: type = TED2Flat
    _load_layout: type = Flat2TED

    def __init__(self, done_keys=None, reward_keys=None) -> None:
        super().__init__()
        self._layout_kwargs = {
            "done_keys": DEFAULT_DONE_KEYS if done_keys is None else tuple(done_keys),
            "reward_keys": ("reward",) if reward_keys is None else tuple(reward_keys),
        }
        self.register_save_hook(self._save_layout(**self._layout_kwargs))
        self.register_load_hook(self._load_layout(**self._layout_kwargs))


class NestedStorageCheckpointer(FlatStorageCheckpointer):
    """A :class:`FlatStorageCheckpointer` that writes :class:`TED2Nested`'s layout.

    Each trajectory is one row of memory-mapped nested tensors; :class:`Nested2TED` restores
    the rows. Arguments as :class:`FlatStorageCheckpointer`.

    >>> ckpt = NestedStorageCheckpointer()
    >>> [type(h).__name__ for h in ckpt._save_hooks + ckpt._load_hooks]
    ['TED2Nested', 'Nested2TED']
    """

    _save_layout = TED2Nested
    _load_layout = Nested2TED


class H5StorageCheckpointer(NestedStorageCheckpointer):
    """A :class:`NestedStorageCheckpointer` that writes one HDF5 file (needs ``h5py``).

    The trajectories of :class:`TED2Nested`'s layout are split by :class:`H5Split`, one HDF5
    group per trajectory, and joined back by :class:`H5Combine`. The metadata goes in the
    directory's ``storage_metadata.json``.

    Args:
        checkpoint_file: name of the file in the checkpoint directory.
        done_keys, reward_keys: as :class:`FlatStorageCheckpointer`.
        h5_kwargs: keyword arguments of ``h5py.Group.create_dataset`` (e.g.
            ``{"compression": "gzip"}``), as a dict or a tuple of pairs.

    >>> ckpt = H5StorageCheckpointer(checkpoint_file="rb.h5", h5_kwargs={"compression": "gzip"})
    >>> ckpt.checkpoint_file
    'rb.h5'
    """

    def __init__(
        self,
        *,
        checkpoint_file: str = "checkpoint.h5",
        done_keys=None,
        reward_keys=None,
        h5_kwargs: dict[str, Any] | tuple[tuple[str, Any], ...] | None = None,
    ) -> None:
        super().__init__(done_keys=done_keys, reward_keys=reward_keys)
        if not isinstance(checkpoint_file, str) or not checkpoint_file:
            raise ValueError(f"checkpoint_file must be a file name, found {checkpoint_file!r}")
        self.checkpoint_file = checkpoint_file
        self.h5_kwargs = dict(h5_kwargs) if h5_kwargs is not None else {}
        self.register_save_hook(H5Split(**self._layout_kwargs))
        self._load_hooks.insert(0, H5Combine())

    @staticmethod
    def _h5py():
        try:
            import h5py
        except ImportError:
            raise ImportError(
                "H5StorageCheckpointer needs h5py (pip install h5py)"
            ) from None
        return h5py

    def _write(self, data: TensorDictBase, directory: str) -> None:
        h5py = self._h5py()
        with h5py.File(os.path.join(directory, self.checkpoint_file), "w") as f:
            for name, leaf in data.items(include_nested=True, leaves_only=True):
                key = name if isinstance(name, tuple) else (name,)
                value = cast(torch.Tensor, leaf).detach().cpu()
                kwargs = self.h5_kwargs if value.ndim else {}
                if value.dtype == torch.bfloat16:
                    raise TypeError(f"HDF5 has no bfloat16; key {key} holds bfloat16")
                f.create_dataset("/".join(key), data=value.numpy(), **kwargs)

    def _read(self, directory: str) -> TensorDictBase:
        h5py = self._h5py()
        out = TensorDict(batch_size=[])
        with h5py.File(os.path.join(directory, self.checkpoint_file), "r") as f:
            def visit(name, node):
                if isinstance(node, h5py.Dataset):
                    out.set(tuple(name.split("/")), torch.as_tensor(node[()]))
            f.visititems(visit)
        return out
