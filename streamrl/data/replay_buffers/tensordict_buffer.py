"""Replay buffers for TensorDicts: samples carry ``index`` (and ``_weight`` when prioritized)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from tensordict import TensorDictBase

from streamrl.data.replay_buffers.replay_buffer import ReplayBuffer
from streamrl.data.replay_buffers.samplers import PrioritizedSampler
from streamrl.data.replay_buffers.samplers.slice_sampler import SLICE_INFO_KEYS
from streamrl.data.replay_buffers.storages import ListStorage, Storage
from streamrl.data.replay_buffers.storages.base import _One

__all__ = ["TensorDictPrioritizedReplayBuffer", "TensorDictReplayBuffer"]

_REDUCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "max": torch.amax, "min": torch.amin, "sum": torch.sum, "mean": torch.mean,
    "median": lambda x, dim: torch.median(x, dim=dim).values,
}


class TensorDictReplayBuffer(ReplayBuffer):
    """A :class:`ReplayBuffer` of TensorDicts; each sample gets an ``index`` entry (int64).

    A prioritized sampler's importance weights are written into the sample twice, as the
    seed's ``_weight`` and as TorchRL 0.14's ``priority_weight`` (the same tensor); a slice
    sampler's start/end flags (``is_init``, ``("next", "truncated")``, ...) are OR-ed into the
    stored ones; for items with batch dims of their own (``add`` of a ``[T]`` TensorDict, a
    list storage of ``[T]`` TensorDicts) these per-item values are spread over the item's dims.
    :meth:`update_tensordict_priority` reads ``index`` and
    ``priority_key`` back from a sample (a no-op without a prioritized sampler). The
    ``priority_key`` entry of an extended batch is not stored: with a prioritized sampler it
    sets the initial priorities of the new items (max over extra dims).

    Args:
        priority_key: key holding the new priorities (default ``"td_error"``).
        reduction: how a priority with extra dims is reduced per item: ``"max"`` (default),
            ``"min"``, ``"sum"``, ``"mean"`` or ``"median"``.
        storage, sampler, ...: as in :class:`ReplayBuffer`.

    >>> from tensordict import TensorDict
    >>> rb = TensorDictReplayBuffer(batch_size=2)
    >>> _ = rb.extend(TensorDict({"a": torch.zeros(3, 1)}, batch_size=[3]))
    >>> sorted(rb.sample().keys())
    ['a', 'index']
    """

    def __init__(self, *, priority_key="td_error", reduction: str = "max", **kwargs) -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {tuple(_REDUCTIONS)}, found {reduction!r}")
        super().__init__(**kwargs)
        self.priority_key = priority_key
        self.reduction = reduction

    def _postprocess(self, data, info):
        if not isinstance(data, TensorDictBase):
            return data
        n = data.batch_size[0] if data.batch_dims else 0
        for key, value in info.items():
            if key in SLICE_INFO_KEYS or not isinstance(value, torch.Tensor):
                continue
            if value.shape[:1] != (n,) or (
                key not in ("index", "_weight", "priority_weight") and value.dtype != torch.bool
            ):
                continue
            if data.device is not None:
                value = value.to(data.device)
            extra = data.batch_dims - value.ndim
            if extra > 0:  # items with batch dims of their own: one value per item, spread
                value = value.reshape(n, *([1] * extra)).expand(data.batch_size)
            if value.dtype == torch.bool:
                # Flags (slice starts and ends) add to what the data says.
                stored = data.get(key, None)
                if stored is not None and stored.numel() == value.numel():
                    value = stored | value.reshape(stored.shape)
            data.set(key, value)
        return data

    def sample(self, batch_size: int | None = None, return_info: bool = False,
               include_info: bool | None = None):
        """:meth:`ReplayBuffer.sample`; the info (``index``, weights, slice flags) is written
        into the TensorDict unless ``include_info=False`` (TorchRL's flag; ``None``: write it).
        """
        if include_info is None or include_info is True:
            return super().sample(batch_size, return_info=return_info)
        if include_info is not False:
            raise TypeError(f"include_info must be a bool or None, found {include_info!r}")
        data, info = self._sample(self._resolve_batch_size(batch_size), include_info=False)
        return (data, info) if return_info else data

    def _pre_write(self, data, update_priority: bool | None = None):
        # Priorities go to the sampler, not into the storage: a batch may carry them or not;
        # with update_priority=False they are dropped (new items get the max priority).
        priority = None
        if isinstance(data, _One) and isinstance(data.item, TensorDictBase):
            # add(): one item; its priority (if any) is reduced over the item's dims.
            value = data.item.get(self.priority_key, None)
            if value is None:
                return data, None
            data = _One(data.item.exclude(self.priority_key))
            if not hasattr(self._sampler, "update_priority") or update_priority is False:
                return data, None
            return data, self._check_priority(self._reduce_priority(value.reshape(1, -1), 1))
        if isinstance(data, TensorDictBase) and data.batch_dims >= 1:
            value = data.get(self.priority_key, None)
            if value is not None:
                data = data.exclude(self.priority_key)
                if hasattr(self._sampler, "update_priority") and update_priority is not False:
                    k = len(getattr(self._storage, "item_batch", ()))
                    n = data.batch_size[: data.batch_dims - k].numel()
                    priority = self._check_priority(
                        self._reduce_priority(value.reshape(n, -1), n)
                    )
        return data, priority

    def _check_priority(self, priority: torch.Tensor) -> torch.Tensor:
        # Check before anything is written (the sampler would only check after).
        check = getattr(self._sampler, "check_priority", None)
        if check is not None:
            try:
                check(priority)
            except ValueError as err:
                raise ValueError(f"extend: {self.priority_key!r}: {err}") from None
        elif bool(torch.isnan(priority).any()) or bool((priority < 0).any()):
            raise ValueError(f"extend: {self.priority_key!r} must be >= 0 and not NaN")
        return priority

    def _after_write(self, plan, batch, priority) -> None:
        sampler = self._sampler
        # a priority comes from _pre_write only for a sampler that has update_priority
        if priority is None or not hasattr(sampler, "update_priority"):
            return
        if plan.source is not None:
            priority = priority[plan.source]
        sampler.update_priority(plan.index, priority, len(self._storage))

    def _reduce_priority(self, priority: torch.Tensor, n: int) -> torch.Tensor:
        priority = priority.detach()
        if priority.ndim > 1 or priority.numel() != n:
            priority = _REDUCTIONS[self.reduction](priority.reshape(n, -1), dim=1)
        return priority

    def update_tensordict_priority(self, data: TensorDictBase) -> None:
        """Update priorities from ``data["index"]`` and ``data[priority_key]``.

        A priority with extra dims (e.g. ``[batch, time]``) is reduced per item with
        ``reduction`` (``"max"`` by default).
        """
        if not hasattr(self._sampler, "update_priority"):
            return
        index = data.get("index", None)
        if index is None:
            raise ValueError("update_tensordict_priority: the TensorDict has no 'index' entry")
        priority = data.get(self.priority_key, None)
        if priority is None:
            raise ValueError(
                f"update_tensordict_priority: the TensorDict has no {self.priority_key!r} entry"
            )
        if index.ndim > 1:  # items with batch dims: their index was spread over them
            index = index.reshape(index.shape[0], -1)[:, 0]
        n = index.numel()
        self.update_priority(index, self._reduce_priority(priority, n))


class TensorDictPrioritizedReplayBuffer(TensorDictReplayBuffer):
    """A :class:`TensorDictReplayBuffer` with a :class:`PrioritizedSampler`.

    Samples carry ``index`` (int64) and the float32 importance weights under ``_weight`` and
    ``priority_weight``.

    Args:
        alpha: priority exponent.
        beta: importance-sampling exponent.
        eps: added to priorities.
        priority_key: key holding priorities (default ``"td_error"``).
        storage, reduction, ...: as in :class:`TensorDictReplayBuffer` (no ``sampler``).
    """

    def __init__(
        self,
        *,
        alpha: float,
        beta: float,
        eps: float = 1e-8,
        priority_key="td_error",
        storage: Storage | None = None,
        **kwargs,
    ) -> None:
        if "sampler" in kwargs:
            raise TypeError("TensorDictPrioritizedReplayBuffer builds its own sampler")
        storage = storage if storage is not None else ListStorage(1000)
        sampler = PrioritizedSampler(storage.max_size, alpha, beta, eps)
        super().__init__(priority_key=priority_key, storage=storage, sampler=sampler, **kwargs)
