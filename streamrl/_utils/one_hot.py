"""``one_hot(index, n, dtype)``: ``F.one_hot(index, n).to(dtype)`` as one row lookup.

``F.one_hot`` checks its indices against ``n`` (a reduction and a read back) and returns
int64, which the callers then cast: three ops where a lookup into a cached identity matrix is
one. Used on the acting path (a Q-value actor's greedy action, an epsilon-greedy draw, a
one-hot spec's or distribution's sample), where a step's few actions make per-op costs
count. Indices out of ``[0, n)`` still raise (``index_select`` checks them)."""

from __future__ import annotations

import torch

_EYES: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}


def one_hot(index: torch.Tensor, n: int, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """The one-hot vectors ``[*index.shape, n]`` of ``index`` in ``dtype`` (a new tensor)."""
    if index.is_floating_point() or index.dtype == torch.bool:
        raise TypeError(f"one_hot needs integer indices, found {index.dtype}")
    key = (n, dtype, index.device)
    eye = _EYES.get(key)
    if eye is None:
        eye = _EYES[key] = torch.eye(n, dtype=dtype, device=index.device)
    return eye.index_select(0, index.reshape(-1)).reshape(*index.shape, n)
