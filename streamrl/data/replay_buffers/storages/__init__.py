"""Storages: where replay-buffer items live (list, preallocated tensors, memory-mapped files),
and their checkpointers."""

from streamrl.data.replay_buffers.storages.base import Storage
from streamrl.data.replay_buffers.storages.checkpointers import (
    CompressedListStorageCheckpointer,
    FlatStorageCheckpointer,
    H5StorageCheckpointer,
    ListStorageCheckpointer,
    NestedStorageCheckpointer,
    StorageCheckpointerBase,
    TensorStorageCheckpointer,
)
from streamrl.data.replay_buffers.storages.compressed_storage import CompressedListStorage
from streamrl.data.replay_buffers.storages.ensemble import StorageEnsemble
from streamrl.data.replay_buffers.storages.lazy_stack_storage import LazyStackStorage
from streamrl.data.replay_buffers.storages.list_storage import ListStorage
from streamrl.data.replay_buffers.storages.memmap_storage import LazyMemmapStorage
from streamrl.data.replay_buffers.storages.tensor_storage import LazyTensorStorage, TensorStorage

__all__ = [
    "CompressedListStorage",
    "CompressedListStorageCheckpointer",
    "FlatStorageCheckpointer",
    "H5StorageCheckpointer",
    "LazyMemmapStorage",
    "LazyStackStorage",
    "LazyTensorStorage",
    "ListStorage",
    "ListStorageCheckpointer",
    "NestedStorageCheckpointer",
    "Storage",
    "StorageCheckpointerBase",
    "StorageEnsemble",
    "TensorStorage",
    "TensorStorageCheckpointer",
]
