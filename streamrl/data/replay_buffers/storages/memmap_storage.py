"""Disk-backed tensor storage: one memory-mapped file per key, in a directory that persists."""

from __future__ import annotations

import json
import mmap
import os
import shutil
import tempfile
import weakref
from typing import Literal

import numpy as np
import torch

from streamrl.data.replay_buffers.storages.tensor_storage import LazyTensorStorage, _dtype_from_str

__all__ = ["LazyMemmapStorage"]

_SCHEMA = "schema.json"
_CURSOR = "cursor.bin"
_FAULT_AROUND = 64 << 10  # Linux maps up to this much around a faulting page (fault_around_bytes)

_Mode = Literal["r+", "w+"]  # open existing files / create them


def _madvise(mm: np.memmap, advice: int) -> None:
    # numpy keeps the mmap.mmap object of a memmap in its (untyped) private attribute
    mm._mmap.madvise(advice)  # type: ignore[attr-defined]


class LazyMemmapStorage(LazyTensorStorage):
    """A :class:`LazyTensorStorage` whose rows live in memory-mapped files under ``scratch_dir``.

    The first write creates ``schema.json`` (keys, shapes, dtypes), one sparse file per key and
    a small cursor file (length and write head, updated in place on every write). Opening a
    directory that already holds a storage reopens it: ``LazyMemmapStorage(n, scratch_dir=d)``
    after a previous process wrote to ``d`` holds the same rows. Without ``scratch_dir`` a
    temporary directory is used and removed by :meth:`close` (or when the storage is garbage
    collected).

    Pages read or written stay in the page cache but are dropped from this process's mapping
    (``madvise(MADV_DONTNEED)``) every ``release_bytes`` touched, so the resident set stays
    small even when the files are far larger than memory.

    Args:
        max_size: number of rows.
        scratch_dir: directory of the files (created if missing).
        release_bytes: bytes touched between two releases of the mapped pages.
        ndim: leading batch dims that are storage dims (see :class:`LazyTensorStorage`).
        auto_cleanup: remove the directory when the storage is closed, garbage collected or
            the process exits (normally or by Ctrl+C). Default: ``True`` for the temporary
            directory (no ``scratch_dir``), ``False`` for a ``scratch_dir`` (kept, to be
            reopened). :meth:`cleanup` removes it at once either way.
        device: where read batches are sent (default CPU); the files stay on the CPU.

    >>> import tempfile
    >>> s = LazyMemmapStorage(1000, scratch_dir=tempfile.mkdtemp())
    """

    def __init__(
        self,
        max_size: int,
        *,
        scratch_dir: str | os.PathLike | None = None,
        release_bytes: int = 128 << 20,
        ndim: int = 1,
        compilable: bool = False,
        auto_cleanup: bool | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if auto_cleanup is not None and not isinstance(auto_cleanup, bool):
            raise TypeError(f"auto_cleanup must be a bool or None, found {auto_cleanup!r}")
        self._cursor: np.memmap | None = None
        self._open_mode: _Mode = "w+"
        super().__init__(max_size, ndim=ndim, compilable=compilable)
        out = torch.device(device) if device is not None else None
        self._out_device = out if out is not None and out.type != "cpu" else None
        self._maps: list[np.memmap] = []
        self._row_bytes = 0  # bytes a random read of one row may map
        self._total_bytes = 0  # size of all files
        self._pending = 0
        self.release_bytes = int(release_bytes)
        self._finalizer = None
        self._closed = False
        if scratch_dir is None:
            self.scratch_dir = tempfile.mkdtemp(prefix="streamrl-memmap-")
        else:
            self.scratch_dir = os.fspath(scratch_dir)
            os.makedirs(self.scratch_dir, exist_ok=True)
        self._auto_cleanup = scratch_dir is None if auto_cleanup is None else auto_cleanup
        if self._auto_cleanup:
            # runs at close(), at garbage collection or at exit (weakref.finalize's atexit)
            self._finalizer = weakref.finalize(
                self, shutil.rmtree, self.scratch_dir, ignore_errors=True
            )
        if scratch_dir is not None:
            if os.path.exists(os.path.join(self.scratch_dir, _SCHEMA)):
                self._reopen()

    # Length and head live in the cursor file once allocated, so they persist with the data.
    @property
    def _len(self) -> int:
        if self._cursor is None and self.__dict__.get("_shared") and not self._closed:
            self._adopt()
        return int(self._cursor[0]) if self._cursor is not None else self.__dict__["_len0"]

    @_len.setter
    def _len(self, value: int) -> None:
        if self._cursor is not None:
            self._cursor[0] = value
        else:
            self.__dict__["_len0"] = value

    @property
    def _head(self) -> int:
        return int(self._cursor[1]) if self._cursor is not None else self.__dict__["_head0"]

    @_head.setter
    def _head(self, value: int) -> None:
        if self._cursor is not None:
            self._cursor[1] = value
        else:
            self.__dict__["_head0"] = value

    def _share(self) -> None:
        """Other processes may allocate the files: look for them until they appear."""
        self.__dict__["_shared"] = True

    def _adopt(self) -> None:
        # Another process sharing this directory made the first write: open its files.
        if os.path.exists(os.path.join(self.scratch_dir, _SCHEMA)):
            self._reopen()

    def _path(self, name: str) -> str:
        return os.path.join(self.scratch_dir, name)

    def _map(self, name: str, shape, dtype: torch.dtype, mode: _Mode) -> torch.Tensor:
        itemsize = torch.empty((), dtype=dtype).element_size()
        nbytes = int(np.prod(shape)) * itemsize
        if nbytes == 0:
            raise ValueError(f"cannot memory-map an empty leaf of shape {tuple(shape)}")
        mm = np.memmap(self._path(name), dtype=np.uint8, mode=mode, shape=(nbytes,))
        # Rows are read at random: no read-ahead, which would map (and read) neighbours too.
        _madvise(mm, mmap.MADV_RANDOM)
        self._maps.append(mm)
        return torch.from_numpy(mm).view(dtype).view(shape)

    def _new_leaf(self, index, key, shape, dtype):
        self._row_bytes += self._footprint(shape, dtype)
        self._total_bytes += int(np.prod(shape)) * torch.empty((), dtype=dtype).element_size()
        return self._map(f"leaf_{index:03d}.bin", shape, dtype, self._open_mode)

    @staticmethod
    def _footprint(shape, dtype) -> int:
        """Bytes a read of one row may map: its pages plus the kernel's fault-around window."""
        row = int(np.prod(shape[1:])) * torch.empty((), dtype=dtype).element_size()
        return -(-row // mmap.PAGESIZE) * mmap.PAGESIZE + _FAULT_AROUND

    def _allocate(self, schema, is_td, item_batch=()) -> None:
        if self._cursor is None:
            length, head = self._len, self._head
            cursor = np.memmap(self._path(_CURSOR), dtype=np.int64, mode="w+", shape=(2,))
            super()._allocate(schema, is_td, item_batch)
            self._cursor = cursor
            self._len, self._head = length, head
            meta = {
                "max_size": self.max_size,
                "is_td": is_td,
                "item_batch": list(item_batch),
                "wrap": self._wrap_state(),
                "keys": [list(k) for k in schema],
                "shapes": [list(s) for s, _ in schema.values()],
                "dtypes": [str(d) for _, d in schema.values()],
            }
            tmp = self._path(_SCHEMA + ".tmp")
            with open(tmp, "w") as f:
                json.dump(meta, f)
            os.replace(tmp, self._path(_SCHEMA))
        else:
            super()._allocate(schema, is_td, item_batch)

    def _reopen(self) -> None:
        with open(self._path(_SCHEMA)) as f:
            meta = json.load(f)
        if meta["max_size"] != self.max_size:
            raise ValueError(
                f"{self.scratch_dir!r} holds a storage of max_size {meta['max_size']}, "
                f"found max_size={self.max_size}"
            )
        schema = {
            tuple(k): (tuple(s), _dtype_from_str(d))
            for k, s, d in zip(meta["keys"], meta["shapes"], meta["dtypes"])
        }
        self._cursor = np.memmap(self._path(_CURSOR), dtype=np.int64, mode="r+", shape=(2,))
        self._wrap = self._wrap_from_state(meta.get("wrap"))
        # Reopen the existing files instead of creating new ones.
        self._open_mode = "r+"
        try:
            LazyTensorStorage._allocate(
                self, schema, bool(meta["is_td"]), tuple(meta.get("item_batch", ()))
            )
        finally:
            self._open_mode = "w+"

    def _check_schema(self, schema: dict) -> None:
        super()._check_schema(schema)
        self._check_open()
        for key, (shape, _) in schema.items():
            if 0 in shape:
                raise ValueError(f"LazyMemmapStorage state: key {list(key)} has empty items "
                                 f"(shape {list(shape)}), which cannot be memory-mapped")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"LazyMemmapStorage at {self.scratch_dir!r} is closed")

    def prepare(self, data):
        """As :meth:`LazyTensorStorage.prepare`; ``RuntimeError`` once closed."""
        self._check_open()
        return super().prepare(data)

    def _read(self, index):
        self._check_open()
        return super()._read(index)

    def _touched(self, rows: int, contiguous: bool = False) -> None:
        if self._total_bytes <= self.release_bytes:
            return  # the whole storage fits in the budget: never worth releasing
        per_row = self._total_bytes // self.max_size if contiguous else self._row_bytes
        self._pending += rows * per_row
        if self._pending >= self.release_bytes:
            self.release_pages()

    def release_pages(self) -> None:
        """Drop the mapped pages from this process (they stay on disk and in the page cache)."""
        self._pending = 0
        for mm in self._maps:
            _madvise(mm, mmap.MADV_DONTNEED)

    def flush(self) -> None:
        """Write dirty pages to disk."""
        for mm in self._maps:
            mm.flush()
        if self._cursor is not None:
            self._cursor.flush()

    def close(self) -> None:
        """Flush, unmap; remove the directory with ``auto_cleanup``. Idempotent."""
        self._closed = True
        if self._maps:
            self.flush()
        self._maps = []
        self._leaves = []
        self._data = None
        self._is_td = None
        if self._cursor is not None:
            length, head = self._len, self._head
            self._cursor = None
            self._len, self._head = length, head
        if self._finalizer is not None:
            self._finalizer()

    def _read_rows(self, index: torch.Tensor):
        out = super()._read_rows(index)
        return out if self._out_device is None else out.to(self._out_device)

    def cleanup(self) -> bool:
        """Close the storage and remove its directory now; ``True`` if files were removed
        (``False``: nothing was written, or the directory is already gone). Idempotent."""
        self.close()
        if self._finalizer is not None:
            self._finalizer.detach()
        path = self.scratch_dir
        if not os.path.isdir(path):
            return False
        had_files = bool(os.listdir(path))
        shutil.rmtree(path, ignore_errors=True)
        return had_files

    def __getstate__(self):
        # Worker processes reopen the files instead of copying the maps.
        if self._cursor is not None:
            self.flush()
        return {
            "max_size": self.max_size,
            "scratch_dir": self.scratch_dir,
            "release_bytes": self.release_bytes,
            "ndim": self.ndim,
            "device": str(self._out_device) if self._out_device is not None else None,
            "_len0": self._len,
            "_head0": self._head,
            "_shared": bool(self.__dict__.get("_shared")),
        }

    def __setstate__(self, state) -> None:
        type(self).__init__(
            self,
            state["max_size"],
            scratch_dir=state["scratch_dir"],
            release_bytes=state["release_bytes"],
            ndim=state.get("ndim", 1),
            device=state.get("device"),
        )
        if self._cursor is None:
            self._len, self._head = state["_len0"], state["_head0"]
        if state.get("_shared"):
            self._share()

    def __repr__(self) -> str:
        return (
            f"LazyMemmapStorage(max_size={self.max_size}, len={self._len}, "
            f"scratch_dir={self.scratch_dir!r})"
        )
