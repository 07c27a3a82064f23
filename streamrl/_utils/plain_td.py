"""The dict that holds a key's entry inside a plain ``TensorDict``, for per-step hot paths.

``TensorDict.get`` / ``set`` with a nested key cost ~2-3 us (key unravelling, checks); a
policy or a network reading and writing a few entries at every step pays that many times.
:func:`plain_parent` walks ``_tensordict`` dicts instead, only through plain (and, for
writing, unlocked) ``TensorDict``\\ s; anything else gets None and the caller uses
``get`` / ``set``. :func:`is_plain` says whether a whole TensorDict is such a plain one.

>>> import torch
>>> from tensordict import TensorDict
>>> td = TensorDict({"agents": TensorDict({"obs": torch.zeros(2, 3)}, [2])}, [])
>>> parent, name = plain_parent(td, ("agents", "obs"))
>>> name, parent[name].shape
('obs', torch.Size([2, 3]))
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict


def plain_parent(td: Any, key: Any, writable: bool = False) -> tuple[dict, str] | None:
    """``(the dict holding key's last part, that part)`` when ``td`` and every TensorDict
    on ``key``'s path are plain ``TensorDict``\\ s (unlocked too when ``writable``); None
    otherwise, or when a TensorDict on the path is missing. The entry itself may be absent
    from the dict."""
    if type(td) is not TensorDict or (writable and td.is_locked):
        return None
    if type(key) is str:
        return td._tensordict, key
    node = td
    for part in key[:-1]:
        node = node._tensordict.get(part)
        if type(node) is not TensorDict or (writable and node.is_locked):
            return None
    return node._tensordict, key[-1]


def is_plain(td: Any, batch_size: Any = None) -> bool:
    """Whether ``td`` is a plain ``TensorDict`` holding tensors and plain TensorDicts only
    (of batch size ``batch_size`` at every level, when given)."""
    if type(td) is not TensorDict or (batch_size is not None and td.batch_size != batch_size):
        return False
    return all(type(v) is torch.Tensor or is_plain(v, batch_size)
               for v in td._tensordict.values())
