"""The recurrent mode of :class:`LSTMModule` and :class:`GRUModule`, per thread."""

from __future__ import annotations

import contextlib
import threading
from typing import Literal

__all__ = ["recurrent_mode", "set_recurrent_mode"]

class _Modes(threading.local):
    """Each thread's stack of modes: a learner on one thread training in recurrent mode
    leaves a rollout stepping on another in its own."""

    def __init__(self) -> None:
        self.stack: list[bool | None] = [None]


_MODES = _Modes()


def recurrent_mode() -> bool | None:
    """The recurrent mode set by this thread's innermost :class:`set_recurrent_mode`, or
    ``None``.

    ``None`` (outside any context) means each module uses its own default.

    >>> recurrent_mode() is None
    True
    >>> with set_recurrent_mode(True):
    ...     recurrent_mode()
    True
    """
    return _MODES.stack[-1]


class set_recurrent_mode(contextlib.ContextDecorator):  # TorchRL's name, a lower-case class
    """Context manager (or decorator) setting the recurrent mode of every RNN module inside.

    ``True`` / ``"recurrent"``: the last batch dim is time and whole sequences run in one call
    (losses, advantage estimation over ``[B, T]`` batches). ``False`` / ``"sequential"``: each
    element is one step whose state is fed back through the TensorDict (collection).
    ``None`` restores each module's own default. Contexts nest; leaving one restores the
    outer mode. The mode is the calling thread's: other threads (a rollout stepping while a
    learner trains) keep theirs.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from streamrl.modules import GRUModule
    >>> gru = GRUModule(3, 8, in_key="obs", out_key="features")
    >>> td = TensorDict({"obs": torch.randn(2, 5, 3)}, [2, 5])
    >>> with set_recurrent_mode("recurrent"):
    ...     gru(td)["features"].shape
    torch.Size([2, 5, 8])
    """

    def __init__(self, mode: bool | Literal["recurrent", "sequential"] | None = True) -> None:
        if mode == "recurrent":
            mode = True
        elif mode == "sequential":
            mode = False
        if mode is not None and not isinstance(mode, bool):
            raise ValueError(
                f"mode must be True, False, None, 'recurrent' or 'sequential', got {mode!r}"
            )
        self.mode = mode

    def __enter__(self) -> set_recurrent_mode:
        _MODES.stack.append(self.mode)
        return self

    def __exit__(self, *exc: object) -> None:
        _MODES.stack.pop()
