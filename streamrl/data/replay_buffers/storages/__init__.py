"""Storages: where replay-buffer items live (list, preallocated tensors, memory-mapped files)."""

from streamrl.data.replay_buffers.storages.base import Storage
from streamrl.data.replay_buffers.storages.compressed_storage import CompressedListStorage
from streamrl.data.replay_buffers.storages.ensemble import StorageEnsemble
from streamrl.data.replay_buffers.storages.lazy_stack_storage import LazyStackStorage
from streamrl.data.replay_buffers.storages.list_storage import ListStorage
from streamrl.data.replay_buffers.storages.memmap_storage import LazyMemmapStorage
from streamrl.data.replay_buffers.storages.tensor_storage import LazyTensorStorage, TensorStorage

__all__ = [
    "CompressedListStorage",
    "LazyMemmapStorage",
    "LazyStackStorage",
    "LazyTensorStorage",
    "ListStorage",
    "Storage",
    "StorageEnsemble",
    "TensorStorage",
]
