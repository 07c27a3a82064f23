"""Importing and starting Ray for the layers that use it (graph placements, the replay
buffer's actor, the Ray collector), in one place: one lock, one keeper thread."""

from __future__ import annotations

import threading
from typing import Any

_init_lock = threading.Lock()


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


def send_by_value(ray: Any, *objs: Any) -> None:
    """Have Ray pickle by value the modules of ``objs`` (functions, partials, bound methods,
    instances) that workers cannot import: a pipeline file loaded by ``streamrl run`` is a
    module of this process only. Importable modules are left alone."""
    import functools
    import importlib.machinery
    import sys

    for obj in objs:
        while isinstance(obj, functools.partial):
            obj = obj.func
        owner = getattr(obj, "__self__", None)  # a bound method: its instance's class too
        for thing in (obj, owner):
            if thing is None:
                continue
            name = getattr(thing, "__module__", None) or type(thing).__module__
            for mod in {name, type(thing).__module__}:
                module = sys.modules.get(mod)
                if module is None or mod == "__main__" or not getattr(module, "__file__", None):
                    continue  # built-in modules have no file; __main__ is Ray's business
                # a search of sys.path (find_spec would answer from sys.modules)
                if importlib.machinery.PathFinder.find_spec(mod.partition(".")[0]) is None:
                    ray.cloudpickle.register_pickle_by_value(module)
