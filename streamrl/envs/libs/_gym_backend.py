"""The gym backend: ``gym_backend()`` and the ``set_gym_backend`` context manager.

streamrl wraps gymnasium only (see docs/torchrl_differences.md), so the one backend that can
be set is gymnasium; the functions exist so that TorchRL code that selects it runs unchanged.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

_SUPPORTED = "gymnasium"


def _resolve(backend: Any) -> ModuleType:
    if isinstance(backend, str):
        name = backend
    elif isinstance(backend, ModuleType):
        name = backend.__name__
    elif callable(backend):
        return _resolve(backend())
    else:
        raise TypeError(
            f"backend must be a module, a module name or a callable returning a module, found "
            f"{type(backend).__name__}"
        )
    if name != _SUPPORTED:
        raise ValueError(f"streamrl supports the gymnasium backend only, found {name!r}")
    return importlib.import_module(_SUPPORTED)


def gym_backend(submodule: str | None = None) -> ModuleType:
    """The gym backend module (gymnasium), or its ``submodule``.

    >>> gym_backend().__name__, gym_backend("wrappers").__name__
    ('gymnasium', 'gymnasium.wrappers')
    """
    module = importlib.import_module(_SUPPORTED)
    if submodule is None:
        return module
    if not isinstance(submodule, str):
        raise TypeError(f"submodule must be a str, found {type(submodule).__name__}")
    return importlib.import_module(f"{module.__name__}.{submodule}")


class set_gym_backend:
    """Select the gym backend in a ``with`` block or for a decorated function.

    ``backend`` is a module, a module name or a callable returning one; it is checked when
    the object is built. Only gymnasium is supported: any other backend raises
    ``ValueError``.

    >>> with set_gym_backend("gymnasium"):
    ...     gym_backend().__name__
    'gymnasium'
    >>> @set_gym_backend("gymnasium")
    ... def make():
    ...     return gym_backend().__name__
    >>> make()
    'gymnasium'
    """

    def __init__(self, backend: Any) -> None:
        self.backend = _resolve(backend)

    def __enter__(self) -> set_gym_backend:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __call__(self, func: Callable) -> Callable:
        if not callable(func):
            raise TypeError(f"set_gym_backend decorates a callable, found {type(func).__name__}")

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return wrapper
