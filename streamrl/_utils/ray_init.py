"""Importing and starting Ray for the layers that use it (graph placements, the replay
buffer's actor, the Ray collector), in one place: one lock, one keeper thread."""

from __future__ import annotations

import threading
from typing import Any

_init_lock = threading.Lock()
_local_modules: list[Any] = []  # see mark_local_module


def import_ray(what: str) -> Any:
    """``import ray``, or an ``ImportError`` saying that ``what`` needs it and how to get it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            f"{what} needs Ray, which is not installed: pip install 'streamrl[ray]' "
            "(or pip install 'ray>=2.40')"
        ) from exc
    return ray


def ensure_init(ray: Any, **init_kwargs: Any) -> None:
    """``ray.init(**init_kwargs)`` unless Ray is running, from a thread that then stays alive
    (daemon) until the process exits: Ray ties the processes it starts to the life of the
    thread that started them (they get ``PR_SET_PDEATHSIG``), and the caller's thread may be
    short-lived (an event loop's under ``run_sync``). Two callers at once init once."""
    with _init_lock:
        if ray.is_initialized():
            return
        done: list[BaseException | None] = []
        ready = threading.Event()

        def keep() -> None:
            try:
                ray.init(**init_kwargs)
                done.append(None)
            except BaseException as exc:
                done.append(exc)
            ready.set()
            if done[0] is None:
                threading.Event().wait()  # never set: the thread lives as long as the process

        threading.Thread(target=keep, name="streamrl-ray-init", daemon=True).start()
        ready.wait()
        if done[0] is not None:
            raise done[0]


def mark_local_module(module: Any) -> None:
    """Record a module that other processes cannot import (a pipeline file ``streamrl run``
    loaded by path): Ray actors get it by value (:func:`send_local_modules`)."""
    if module not in _local_modules:
        _local_modules.append(module)


def send_local_modules(ray: Any) -> None:
    """Have Ray pickle the marked modules by value (call before creating actors)."""
    for module in _local_modules:
        ray.cloudpickle.register_pickle_by_value(module)
