"""A list of TensorDicts read back as one lazily stacked TensorDict."""

from __future__ import annotations

import torch
from tensordict import LazyStackedTensorDict, TensorDictBase

from streamrl.data.replay_buffers.storages.list_storage import ListStorage

__all__ = ["LazyStackStorage"]

_UNBOUNDED = 2**40  # "no max_size": more items than fit in memory


class LazyStackStorage(ListStorage):
    """A :class:`ListStorage` of TensorDicts whose reads are ``LazyStackedTensorDict``s.

    Items may differ in shape (e.g. trajectories of different lengths): a read stacks them
    lazily along ``stack_dim``; heterogeneous entries are read padded, nested or as a list
    (``get(key, as_padded_tensor=True)``, ``as_nested_tensor``, ``as_list``). ``add`` stores one TensorDict; ``extend``
    takes a list of TensorDicts or a TensorDict split along its first dim.

    Args:
        max_size: number of slots (``None``: unbounded; a prioritized sampler needs a bound).
        stack_dim: dim of the read stack, in batch dims (``-1``: the last).
        device: move items there when written (``None``: leave them where they are).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from streamrl.data import ReplayBuffer
    >>> rb = ReplayBuffer(storage=LazyStackStorage(100))
    >>> _ = rb.add(TensorDict(a=torch.zeros(10)))
    >>> _ = rb.add(TensorDict(a=torch.zeros(11)))
    >>> rb[:].get("a", as_padded_tensor=True).shape
    torch.Size([2, 11])
    """

    def __init__(
        self,
        max_size: int | None = None,
        *,
        stack_dim: int = 0,
        device: str | torch.device | None = None,
        compilable: bool = False,
    ) -> None:
        super().__init__(_UNBOUNDED if max_size is None else max_size, compilable=compilable)
        if isinstance(stack_dim, bool) or not isinstance(stack_dim, int):
            raise TypeError(f"stack_dim must be an int, found {stack_dim!r}")
        self.stack_dim = stack_dim
        self.device = torch.device(device) if device is not None else None

    def prepare(self, data):
        """Like :meth:`ListStorage.prepare`; every item must be a TensorDict."""
        batch = super().prepare(data)
        for i, item in enumerate(batch.data):
            if not isinstance(item, TensorDictBase):
                raise TypeError(
                    f"LazyStackStorage holds TensorDicts, found a {type(item).__name__} at "
                    f"position {i} of the batch"
                )
        if self.device is not None:
            batch = batch._replace(data=[item.to(self.device) for item in batch.data])
        return batch

    def get(self, index):
        """The item at an int ``index``, else the items lazily stacked."""
        items = ListStorage._read(self, self._check_index(index))
        return items[0] if isinstance(index, int) else self._stack(items)

    def _read(self, index):
        return self._stack(super()._read(index))

    def _stack(self, items):
        if len(items) == 0:
            raise IndexError("cannot stack an empty selection of LazyStackStorage items")
        dim = self.stack_dim
        if dim < 0:
            dim += items[0].batch_dims + 1
        return LazyStackedTensorDict.lazy_stack(items, dim=dim)

    def state_dict(self):
        """As :meth:`ListStorage.state_dict`."""
        return {**super().state_dict(), "type": "LazyStackStorage"}

    _state_type = "LazyStackStorage"
