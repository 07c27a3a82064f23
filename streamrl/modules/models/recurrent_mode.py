"""The process-wide recurrent mode of :class:`LSTMModule` and :class:`GRUModule`."""

from __future__ import annotations

import contextlib
from typing import Literal

__all__ = ["recurrent_mode", "set_recurrent_mode"]

_MODE: list[bool | None] = [None]


def recurrent_mode() -> bool | None:
    """The recurrent mode set by the innermost :class:`set_recurrent_mode`, or ``None``.

    ``None`` (outside any context) means each module uses its own default.

    >>> recurrent_mode() is None
    True
    >>> with set_recurrent_mode(True):
    ...     recurrent_mode()
    True
    """
    return _MODE[-1]


class set_recurrent_mode(contextlib.ContextDecorator):  # TorchRL's name, a lower-case class
    """Context manager (or decorator) setting the recurrent mode of every RNN module inside.

    ``True`` / ``"recurrent"``: the last batch dim is time and whole sequences run in one call
    (losses, advantage estimation over ``[B, T]`` batches). ``False`` / ``"sequential"``: each
    element is one step whose state is fed back through the TensorDict (collection).
    ``None`` restores each module's own default. Contexts nest; leaving one restores the
    outer mode.

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
        _MODE.append(self.mode)
        return self

    def __exit__(self, *exc: object) -> None:
        _MODE.pop()
