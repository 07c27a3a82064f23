"""Storages: where replay-buffer items live (list, preallocated tensors, memory-mapped files)."""

from streamrl.data.replay_buffers.storages.base import Storage
from streamrl.data.replay_buffers.storages.list_storage import ListStorage
from streamrl.data.replay_buffers.storages.memmap_storage import LazyMemmapStorage
from streamrl.data.replay_buffers.storages.tensor_storage import LazyTensorStorage

__all__ = ["LazyMemmapStorage", "LazyTensorStorage", "ListStorage", "Storage"]
