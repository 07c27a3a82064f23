"""Transform state that copies share: tensors in shared memory behind a process lock.

A transform keeps such state in plain attributes (not buffers) named in ``shared``.
``copy.deepcopy`` and the pickling that starts a worker process keep sharing it; a plain
``pickle`` round trip makes an independent copy (with a lock of its own).
"""

from __future__ import annotations

import copy
import multiprocessing as mp
from typing import Any


def new_lock() -> Any:
    """A process lock of the default start method."""
    return mp.get_context().Lock()


def deepcopy_sharing(obj: Any, memo: dict) -> Any:
    """A copy of the transform ``obj`` whose shared attributes and lock are the same objects
    (its nn.Module parameters, buffers and sub-modules are copied; its container dropped)."""
    new = copy.copy(obj)
    new.__dict__ = {**obj.__dict__}
    for name in ("_parameters", "_buffers", "_modules"):
        new.__dict__[name] = copy.deepcopy(obj.__dict__[name], memo)
    object.__setattr__(new, "_container", None)
    return new


def getstate_sharing(state: dict, shared: tuple[str, ...]) -> dict:
    """Pickled state: the lock and shared memory travel only to a worker being started."""
    if mp.context.get_spawning_popen() is None:
        state["_lock"] = None
        for name in shared:
            if state.get(name) is not None:
                state[name] = state[name].clone()
    return state


def setstate_sharing(obj: Any, shared: tuple[str, ...]) -> None:
    """After unpickling: a fresh lock where none travelled, state moved to shared memory."""
    if obj.__dict__.get("_lock") is None:
        object.__setattr__(obj, "_lock", new_lock())
    for name in shared:
        value = obj.__dict__.get(name)
        if value is not None and not value.is_shared():
            value.share_memory_()
