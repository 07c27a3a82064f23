"""What crosses a Ray call, for every layer that talks to Ray actors (the graph's Ray
placement, the data layer's :class:`~streamrl.data.RayReplayBuffer`): TensorDicts packed as
numpy arrays, remote exceptions unwrapped into the original one, and where an actor runs
(so that its death can be reported with its node).

Nothing here imports Ray: the callers pass the ``ray`` module they imported lazily.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from typing import Any

# A TensorDict of CPU tensors crosses as (_PACKED, batch_size, device, keys, numpy arrays):
# Ray serializes numpy arrays much faster than torch tensors (a 256x4 float32 TensorDict:
# ~1.0 ms per round trip instead of ~1.6 ms on a 2-core machine; see benchmarks/graph_ray.py).
_PACKED = "__streamrl_ray_td__"
# A tuple holding TensorDicts (e.g. a weights message ``(version, params)``) crosses as
# (_PACKED_TUPLE, [its elements, packed]).
_PACKED_TUPLE = "__streamrl_ray_tuple__"


def pack_item(item: Any) -> Any:
    from tensordict import TensorDict

    if type(item) is tuple and any(type(x) is TensorDict for x in item):
        return (_PACKED_TUPLE, [pack_item(x) for x in item])
    if type(item) is not TensorDict or any(n is not None for n in item.names):
        return item
    import torch

    keys: list[Any] = []
    arrays: list[Any] = []  # numpy arrays; None recreates an empty nested TensorDict
    for k, v in item.items(True, False):
        if type(v) is TensorDict:
            if v.batch_size != item.batch_size:
                return item  # a nested batch size would be lost
            if v.is_empty():  # no leaf would recreate it
                keys.append(k)
                arrays.append(None)
            continue
        if type(v) is not torch.Tensor or v.device.type != "cpu" or v.requires_grad:
            return item  # non-tensor leaves, device tensors, graph leaves: pickle as usual
        try:
            arrays.append(v.numpy())
        except (RuntimeError, TypeError):  # e.g. bfloat16 has no numpy dtype
            return item
        keys.append(k)
    device = None if item.device is None else str(item.device)
    return (_PACKED, tuple(item.batch_size), device, keys, arrays)


def packed_nbytes(packed: Any) -> int:
    """The bytes of the arrays in what :func:`pack_item` returned (0 for other items)."""
    if type(packed) is not tuple or not packed or not isinstance(packed[0], str):
        return 0
    if packed[0] == _PACKED_TUPLE:
        return sum(packed_nbytes(x) for x in packed[1])
    if packed[0] == _PACKED and len(packed) == 5:
        return sum(a.nbytes for a in packed[4] if a is not None)
    return 0


def unpack_item(item: Any, *, copy: bool = True) -> Any:
    """What :func:`pack_item` packed. Arrays read from Ray's object store are read-only views
    of it: they are copied, unless ``copy=False``, where the tensors share the store's memory
    (writing into them in place would change the stored object, and keeping them pins it)."""
    if type(item) is tuple and len(item) == 2 and type(item[0]) is str and (
            item[0] == _PACKED_TUPLE):
        return tuple(unpack_item(x, copy=copy) for x in item[1])
    if type(item) is not tuple or len(item) != 5 or item[0] != _PACKED:
        return item
    import torch
    from tensordict import TensorDict

    _, batch_size, device, keys, arrays = item
    td = TensorDict({}, batch_size=batch_size, device=device)
    with warnings.catch_warnings() if not copy else contextlib.nullcontext():
        if not copy:  # torch warns (once) that the view is not writable
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        for k, a in zip(keys, arrays):
            if a is None:
                td.set(k, TensorDict({}, batch_size=batch_size, device=device))
            else:
                td.set(k, torch.from_numpy(a if a.flags.writeable or not copy else a.copy()))
    return td


def unwrap_error(ray: Any, exc: BaseException) -> BaseException:
    """The operator's own exception for a ``RayTaskError`` (Ray's remote traceback as a note),
    else ``exc`` (e.g. ``ActorDiedError``)."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            if hasattr(cause, "add_note"):  # Python >= 3.11
                # str(): Ray's remote traceback (the raised instance has no traceback_str),
                # without its terminal colour codes
                cause.add_note("raised on a Ray actor: " + re.sub(r"\x1b\[[0-9;]*m", "", str(exc)))
            return cause
    return exc


def actor_location() -> tuple[str, str, int]:
    """Called on an actor: where it runs, ``(node id, node IP, pid)``."""
    import os

    import ray

    return ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address(), os.getpid()


def actor_died(name: str, where: tuple[str, str, int] | None, exc: BaseException
               ) -> RuntimeError:
    """The error for actor ``name`` found dead (``exc``: Ray's error), naming its pid and node
    from ``where`` (:func:`actor_location`; ``None``: not known)."""
    node, ip, pid = where if where is not None else ("?", "?", -1)
    return RuntimeError(f"the Ray actor {name} (pid {pid}) on node {node} ({ip}) died: "
                        f"{type(exc).__name__}: {exc}")
