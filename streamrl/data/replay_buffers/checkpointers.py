"""TorchRL's ``torchrl.data.replay_buffers.checkpointers`` path: the names of :mod:`streamrl.data.replay_buffers` that TorchRL 0.14 defines there,
importable from where TorchRL users import them.

>>> from streamrl.data.replay_buffers.checkpointers import CompressedListStorageCheckpointer
"""

from streamrl.data.replay_buffers import (
    CompressedListStorageCheckpointer,
    FlatStorageCheckpointer,
    H5StorageCheckpointer,
    ListStorageCheckpointer,
    NestedStorageCheckpointer,
    StorageCheckpointerBase,
    TensorStorageCheckpointer,
)

__all__ = [
    "CompressedListStorageCheckpointer",
    "FlatStorageCheckpointer",
    "H5StorageCheckpointer",
    "ListStorageCheckpointer",
    "NestedStorageCheckpointer",
    "StorageCheckpointerBase",
    "TensorStorageCheckpointer",
]
