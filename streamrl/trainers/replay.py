"""ReplayBufferTrainer: store collected batches in a replay buffer and train on its samples."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.trainers._checks import check_name, check_trainer, positive_int
from streamrl.trainers.hook_base import TrainerHookBase

__all__ = ["ReplayBufferTrainer"]

MASK_KEY = ("collector", "mask")


class ReplayBufferTrainer(TrainerHookBase):
    """Replay for a :class:`~streamrl.trainers.Trainer`: :meth:`extend` each collected batch
    into ``replay_buffer`` (``"batch_process"``), train on :meth:`sample` (``"process_optim_batch"``)
    and write the loss's priorities back with :meth:`update_priority` (``"post_loss"``; a no-op
    for a buffer without priorities).

    Args:
        replay_buffer: a :mod:`streamrl.data` replay buffer.
        batch_size: rows per sample (``None``: the buffer's own ``batch_size``).
        device: move samples to this device.
        flatten_tensordicts: store only the batch's valid steps (``("collector", "mask")``),
            flattened; otherwise the batch is passed as it is (streamrl's storages flatten the
            batch dims themselves, row-major).
        iterate: draw samples by iterating over the buffer instead of calling ``sample``.

    :attr:`write_count` counts the rows written through the hook. TorchRL's ``max_dims``
    (padding batches to one shape) and ``memmap`` are not accepted: streamrl's storages store
    rows, so padding would store fake steps.

    >>> from tensordict import TensorDict
    >>> from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
    >>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(100))
    >>> hook = ReplayBufferTrainer(rb, batch_size=4, flatten_tensordicts=True)
    >>> hook.extend(TensorDict({"obs": torch.zeros(2, 5, 3)}, [2, 5]))
    >>> len(rb), hook.sample(None).batch_size
    (10, torch.Size([4]))
    """

    def __init__(
        self,
        replay_buffer: Any,
        batch_size: int | None = None,
        device: Any = None,
        flatten_tensordicts: bool = False,
        iterate: bool = False,
    ) -> None:
        if not (callable(getattr(replay_buffer, "extend", None))
                and callable(getattr(replay_buffer, "sample", None))):
            raise TypeError(
                f"replay_buffer must have extend() and sample(), found "
                f"{type(replay_buffer).__name__}"
            )
        if batch_size is not None:
            positive_int(batch_size, "batch_size")
        elif getattr(replay_buffer, "batch_size", None) is None:
            raise ValueError(
                "no batch size: pass ReplayBufferTrainer(batch_size=) or give the replay buffer one"
            )
        if not isinstance(flatten_tensordicts, bool) or not isinstance(iterate, bool):
            raise TypeError("flatten_tensordicts and iterate must be bools, found "
                            f"{flatten_tensordicts!r} and {iterate!r}")
        if iterate and batch_size is not None and batch_size != replay_buffer.batch_size:
            raise ValueError(
                f"iterate=True samples the buffer's own batch_size ({replay_buffer.batch_size}); "
                f"found batch_size={batch_size}"
            )
        self.replay_buffer = replay_buffer
        self.batch_size = batch_size
        self.device = None if device is None else torch.device(device)
        self.flatten_tensordicts = flatten_tensordicts
        self.iterate = iterate
        self.write_count = 0
        self._iterator: Iterator[Any] | None = None

    def extend(self, batch: TensorDictBase) -> None:
        """Write ``batch`` (flattened or padded as configured) into the buffer."""
        if not isinstance(batch, TensorDictBase):
            raise TypeError(f"expected a TensorDict batch, found {type(batch).__name__}")
        if self.flatten_tensordicts:
            mask = batch.get(MASK_KEY, None)
            batch = batch[mask] if mask is not None else batch.reshape(-1)
        self.replay_buffer.extend(batch)
        self.write_count += batch.batch_size.numel()

    def sample(self, batch: TensorDictBase | None = None) -> TensorDictBase:
        """A sample from the buffer (the collected ``batch`` is not used)."""
        if self.iterate:
            if self._iterator is None:
                self._iterator = iter(self.replay_buffer)
            try:
                data = next(self._iterator)
            except StopIteration:
                self._iterator = iter(self.replay_buffer)
                data = next(self._iterator)
        else:
            data = self.replay_buffer.sample(self.batch_size)
        if self.device is not None:
            data = data.to(self.device)
        return data

    def update_priority(self, batch: TensorDictBase) -> None:
        """Write the loss's priorities of a sampled batch back (prioritized buffers only)."""
        update = getattr(self.replay_buffer, "update_tensordict_priority", None)
        if update is not None:
            update(batch)

    def register(self, trainer: Any, name: str = "replay_buffer") -> None:
        """:meth:`extend` at ``"batch_process"``, :meth:`sample` at ``"process_optim_batch"``,
        :meth:`update_priority` at ``"post_loss"``; the buffer is saved as module ``name``."""
        check_trainer(trainer, self)
        trainer.register_op("batch_process", self.extend)
        trainer.register_op("process_optim_batch", self.sample)
        trainer.register_op("post_loss", self.update_priority)
        trainer.register_module(check_name(name), self)

    def state_dict(self) -> dict[str, Any]:
        """The buffer's state (storage, sampler, writer) and :attr:`write_count`."""
        return {"replay_buffer": self.replay_buffer.state_dict(), "write_count": self.write_count}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.replay_buffer.load_state_dict(state_dict["replay_buffer"])
        self.write_count = int(state_dict["write_count"])
        self._iterator = None
