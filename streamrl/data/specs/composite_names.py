"""Batch-dim names of a :class:`Composite` (as ``TensorDict.names``): checking them and
following them through indexing."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["check_names", "names_after_index"]


def check_names(names: Any, ndim: int) -> list | None:
    """``names`` as a list of ``ndim`` str-or-None (None when no dim is named).

    >>> check_names(["env", None], 2), check_names(None, 2)
    (['env', None], None)
    """
    if names is None:
        return None
    if isinstance(names, str):
        raise TypeError(f"names must be a sequence of str or None, found the str {names!r}")
    names = list(names)
    if len(names) != ndim:
        raise ValueError(f"Expected {ndim} names, but got {len(names)} names: {names}")
    bad = [n for n in names if n is not None and not isinstance(n, str)]
    if bad:
        raise TypeError(f"names must be str or None, found {bad}")
    named = [n for n in names if n is not None]
    if len(set(named)) != len(named):
        raise ValueError(f"names must be unique, found {names}")
    return names if named else None


def names_after_index(names: list, shape: torch.Size, index: Any) -> list | None:
    """The names of the dims left by ``value[index]`` on a batch of ``shape``: an int drops
    its dim, a slice or a 1-dim index keeps it, ``None`` adds an unnamed dim; None when the
    index is of another kind (its dims cannot be followed).

    >>> names_after_index(["env", "time"], torch.Size([2, 3]), 0)
    ['time']
    """
    idx = index if isinstance(index, tuple) else (index,)
    if idx.count(Ellipsis) > 1:
        return None
    if Ellipsis in idx:
        i = idx.index(Ellipsis)
        used = sum(1 for x in idx if x is not None and x is not Ellipsis)
        idx = (*idx[:i], *([slice(None)] * (len(shape) - used)), *idx[i + 1 :])
    out: list = []
    dim = 0
    for x in idx:
        if x is None:
            out.append(None)
            continue
        if dim >= len(names):
            return None
        if isinstance(x, int):
            pass
        elif isinstance(x, slice) or (isinstance(x, torch.Tensor | list) and _is_1d(x)):
            out.append(names[dim])
        else:
            return None
        dim += 1
    return out + names[dim:]


def _is_1d(x: Any) -> bool:
    t = torch.as_tensor(x)
    return t.ndim == 1 and t.dtype != torch.bool
