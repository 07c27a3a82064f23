"""A list storage that keeps every tensor compressed (e.g. image observations)."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.data.replay_buffers.storages.base import Batch
from streamrl.data.replay_buffers.storages.list_storage import ListStorage
from streamrl.data.replay_buffers.storages.tensor_storage import _dtype_from_str

__all__ = ["CompressedListStorage"]


def _zlib_compress(level: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def compress(tensor: torch.Tensor) -> torch.Tensor:
        raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        return torch.frombuffer(bytearray(zlib.compress(raw.tobytes(), level)), dtype=torch.uint8)

    return compress


def _zlib_decompress(data: torch.Tensor) -> torch.Tensor:
    raw = zlib.decompress(data.numpy().tobytes())
    return torch.from_numpy(np.frombuffer(bytearray(raw), dtype=np.uint8))


class CompressedListStorage(ListStorage):
    """Store tensors and TensorDicts compressed, one compressed buffer per leaf and item.

    Reads decompress the items and the buffer's collate stacks them, so samples look exactly
    like what was written. The default codec is zlib (the standard library's; TorchRL's
    default zstd needs an extra package) at ``compression_level`` (1-9). Custom codecs:
    ``compression_fn(tensor) -> uint8 tensor`` and ``decompression_fn(uint8 tensor) -> tensor``
    (its bytes are reinterpreted with the original dtype and shape, which the storage keeps).

    Args:
        max_size: number of slots.
        compression_fn: tensor -> compressed uint8 tensor.
        decompression_fn: compressed uint8 tensor -> tensor of the original bytes.
        compression_level: zlib level of the default codec.
        device: where decompressed items go.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from streamrl.data import ReplayBuffer
    >>> rb = ReplayBuffer(storage=CompressedListStorage(100), batch_size=3)
    >>> _ = rb.extend(TensorDict({"obs": torch.zeros(10, 3, 84, 84)}, [10]))
    >>> rb.sample()["obs"].shape
    torch.Size([3, 3, 84, 84])
    """

    def __init__(
        self,
        max_size: int,
        *,
        compression_fn: Callable | None = None,
        decompression_fn: Callable | None = None,
        compression_level: int = 3,
        device: str | torch.device = "cpu",
        compilable: bool = False,
    ) -> None:
        super().__init__(max_size, compilable=compilable)
        if (compression_fn is None) != (decompression_fn is None):
            raise ValueError("give both compression_fn and decompression_fn, or neither")
        if compression_fn is None:
            if isinstance(compression_level, bool) or compression_level not in range(0, 10):
                raise ValueError(
                    f"compression_level must be an int in [0, 9] (zlib), found "
                    f"{compression_level!r}"
                )
            compression_fn = _zlib_compress(compression_level)
            decompression_fn = _zlib_decompress
        self.compression_fn = compression_fn
        self.decompression_fn = decompression_fn
        self.compression_level = compression_level
        self.device = torch.device(device)

    def _default_checkpointer(self):
        from streamrl.data.replay_buffers.storages.checkpointers import (
            CompressedListStorageCheckpointer,
        )

        return CompressedListStorageCheckpointer()

    # An item is stored as (kind, batch_size, [(key, packed, shape, dtype), ...]).
    def _pack(self, item):
        if isinstance(item, torch.Tensor):
            return ("tensor", [], [((), self._compress(item), list(item.shape), str(item.dtype))])
        if isinstance(item, TensorDictBase):
            leaves = []
            for key, value in item.items(include_nested=True, leaves_only=True):
                if not isinstance(value, torch.Tensor):
                    raise TypeError(
                        f"CompressedListStorage compresses tensors; key {key!r} holds a "
                        f"{type(value).__name__}"
                    )
                key = key if isinstance(key, tuple) else (key,)
                leaves.append((key, self._compress(value), list(value.shape), str(value.dtype)))
            return ("td", list(item.batch_size), leaves)
        raise TypeError(
            f"CompressedListStorage holds tensors or TensorDicts, found {type(item).__name__}"
        )

    def _compress(self, tensor: torch.Tensor) -> torch.Tensor:
        out = self.compression_fn(tensor)
        if not isinstance(out, torch.Tensor) or out.dtype != torch.uint8:
            raise TypeError(
                f"compression_fn must return a uint8 tensor, found "
                f"{getattr(out, 'dtype', type(out).__name__)}"
            )
        return out

    def _unpack(self, packed):
        kind, batch_size, leaves = packed
        values = {}
        for key, data, shape, dtype in leaves:
            raw = self.decompression_fn(data).reshape(-1)
            dt = _dtype_from_str(dtype)
            if raw.dtype != dt:
                raw = raw.view(torch.uint8).view(dt)
            values[tuple(key)] = raw.reshape(shape).to(self.device)
        if kind == "tensor":
            return values[()]
        td = TensorDict(batch_size=batch_size, device=self.device)
        for key, value in values.items():
            td.set(key, value)
        return td

    def prepare(self, data) -> Batch:
        """Split into items and compress them (nothing is stored yet)."""
        batch = super().prepare(data)
        return batch._replace(data=[self._pack(item) for item in batch.data])

    def get(self, index):
        """Decompressed item(s): one for an int ``index``, else a list."""
        items = [self._unpack(p) for p in ListStorage._read(self, self._check_index(index))]
        return items[0] if isinstance(index, int) else items

    def _read(self, index):
        return [self._unpack(p) for p in super()._read(index)]

    def state_dict(self):
        """The compressed items (uint8 tensors and plain values)."""
        return {**super().state_dict(), "type": "CompressedListStorage"}

    _state_type = "CompressedListStorage"

    def _items_from_state(self, items: list) -> list:
        return [(kind, list(bs), [(tuple(k), d, list(s), dt) for k, d, s, dt in leaves])
                for kind, bs, leaves in items]
