"""Argument checks the trainer and its hooks share."""

from __future__ import annotations

from typing import Any


def check_trainer(trainer: Any, hook: object) -> None:
    """Raise unless ``trainer`` can take hooks (``register_op`` and ``register_module``)."""
    if not (callable(getattr(trainer, "register_op", None))
            and callable(getattr(trainer, "register_module", None))):
        raise TypeError(
            f"{type(hook).__name__}.register expects a Trainer, found {type(trainer).__name__}"
        )


def check_name(name: Any) -> str:
    """A module name: a non-empty str."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a hook's name must be a non-empty str, found {name!r}")
    return name


def positive_int(value: Any, what: str) -> int:
    """``value`` if it is a positive int (not a bool), else ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int, found {value!r}")
    return value
