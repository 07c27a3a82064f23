"""TrainerHookBase: what a Trainer hook implements (its default registration and its state)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["TrainerHookBase"]


class TrainerHookBase(ABC):
    """A hook of :class:`~streamrl.trainers.Trainer`.

    A hook is a callable registered at one or more points of the training loop with
    ``trainer.register_op(dest, hook)``. :meth:`register` puts it at its default place(s) and
    registers it as a module (``trainer.register_module(name, hook)``) so its state is part of
    the trainer's :meth:`~streamrl.trainers.Trainer.state_dict`. A hook without state keeps the
    default :meth:`state_dict` (``{}``).

    >>> class CountBatches(TrainerHookBase):
    ...     def __init__(self):
    ...         self.batches = 0
    ...     def __call__(self):
    ...         self.batches += 1
    ...     def register(self, trainer, name="count_batches"):
    ...         trainer.register_op("post_steps", self)
    ...         trainer.register_module(name, self)
    ...     def state_dict(self):
    ...         return {"batches": self.batches}
    ...     def load_state_dict(self, state_dict):
    ...         self.batches = state_dict["batches"]
    >>> hook = CountBatches()
    >>> hook(); hook.state_dict()
    {'batches': 1}
    """

    @abstractmethod
    def register(self, trainer: Any, name: str) -> None:
        """Register the hook at its default destination(s) of ``trainer``, as module ``name``."""

    def state_dict(self) -> dict[str, Any]:
        """The hook's state (plain values and tensors: the trainer saves it with
        ``weights_only`` checkpoints)."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, found {type(state_dict).__name__}")
        if state_dict:
            raise ValueError(
                f"{type(self).__name__} has no state; found entries {sorted(state_dict)}"
            )

