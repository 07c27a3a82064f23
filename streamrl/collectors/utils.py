"""Collector utilities: cutting a collected batch into its trajectories.

A collector returns fixed-size ``[*envs, T]`` batches in which episodes run into each other;
:func:`split_trajectories` regroups them as one row per trajectory, zero-padded to the longest,
with a boolean ``mask`` of the valid steps (TorchRL's ``torchrl.collectors.utils`` function of
the same name and arguments).

>>> import torch
>>> from tensordict import TensorDict
>>> batch = TensorDict({"obs": torch.arange(5.0),
...                     "collector": {"traj_ids": torch.tensor([0, 0, 0, 1, 1])}}, [5])
>>> trajs = split_trajectories(batch)
>>> trajs.batch_size, trajs["obs"].tolist()
(torch.Size([2, 3]), [[0.0, 1.0, 2.0], [3.0, 4.0, 0.0]])
>>> trajs["collector", "mask"].tolist()
[[True, True, True], [True, True, False]]
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase, pad

from streamrl._utils.plain_td import is_plain

__all__ = ["split_trajectories"]


def _key(key: Any) -> tuple:
    return (key,) if isinstance(key, str) else tuple(key)


def split_trajectories(
    rollout_tensordict: TensorDictBase,
    *,
    prefix: Any = None,
    trajectory_key: Any = None,
    done_key: Any = None,
    as_nested: bool = False,
) -> TensorDictBase:
    """One row per trajectory of a ``[*batch, T]`` rollout, zero-padded: ``[B, T_max]``.

    Args:
        rollout_tensordict: steps with trajectories adjacent along the last dim (what a
            collector or ``env.rollout`` returns; batch dims before it are flattened, each
            row starting new trajectories).
        prefix: where the ``"traj_ids"`` and ``"mask"`` entries are: ``"collector"`` when
            the input has a ``"collector"`` entry, else the root.
        trajectory_key: the key of the trajectory ids (default ``(*prefix, "traj_ids")``).
            When the input has none, trajectories are cut after each ``("next", done_key)``
            step and at the start of each row.
        done_key: the done flag used then (default ``"done"``).
        as_nested: not supported (nested tensors); raises ``ValueError`` when True.

    Returns a new TensorDict with a leading trajectory dim, in order of first appearance,
    and a bool ``mask`` entry beside the trajectory ids (``(*prefix, "mask")``) marking the
    valid steps; padded steps are zero (False for bool entries).
    """
    td = rollout_tensordict
    if not isinstance(td, TensorDictBase):
        raise TypeError(f"split_trajectories expects a TensorDict, found {type(td).__name__}")
    if as_nested:
        raise ValueError("split_trajectories(as_nested=True) is not supported: use the padded form")
    if td.batch_dims < 1:
        raise ValueError("split_trajectories needs a TensorDict with a time dim, found batch_size []")
    if trajectory_key is None:
        if prefix is None:
            prefix = "collector" if "collector" in td.keys() else ()
        trajectory_key = (*_key(prefix), "traj_ids")
    trajectory_key = _key(trajectory_key)
    mask_key = (*trajectory_key[:-1], "mask")
    flat = td.reshape(-1)
    steps = td.batch_size[-1]
    ids = flat.get(trajectory_key, None)
    if ids is not None:
        ids = ids.reshape(-1)
        new = torch.ones_like(ids, dtype=torch.bool)
        new[1:] = ids[1:] != ids[:-1]
    else:
        done = flat.get(("next", *_key(done_key or "done")), None)
        if done is None:
            raise KeyError(
                f"split_trajectories needs {trajectory_key} or ('next', "
                f"{done_key or 'done'!r}) to find the trajectories; found keys "
                f"{sorted(map(str, td.keys(True, True)))}"
            )
        done = done.reshape(len(flat), -1).any(-1)
        new = torch.zeros(len(flat), dtype=torch.bool)
        new[1:] = done[:-1]
    new[::steps] = True  # every row starts new trajectories
    first = new.nonzero().flatten()  # each trajectory's first step
    starts = first.tolist()
    lengths = [b - a for a, b in zip(starts, [*starts[1:], len(flat)], strict=True)]
    longest = max(lengths)
    out = _scattered(flat, new, first, longest)
    if out is None:  # nested batch dims or non-tensor entries: padded piece by piece
        pieces = flat.split(lengths)
        out = torch.stack([pad(p, [0, longest - len(p)]) for p in pieces])
    mask = torch.arange(longest).expand(len(lengths), longest) < torch.tensor(lengths)[:, None]
    out.set(mask_key, mask)
    return out


def _scattered(flat: TensorDictBase, new: torch.Tensor, first: torch.Tensor, longest: int
               ) -> TensorDictBase | None:
    """``[n_trajs, longest]`` zero-padded rows of ``flat``'s steps, each leaf written by one
    indexed copy (not one pad per trajectory and leaf); None unless ``flat`` is a plain
    TensorDict of tensors whose nested TensorDicts have no batch dims of their own."""
    if not is_plain(flat, flat.batch_size):
        return None
    rows = torch.cumsum(new, 0) - 1  # each step's trajectory
    pos = torch.arange(len(new)) - first[rows]  # and its place in it
    size = torch.Size((len(first), longest))

    def scatter(v: torch.Tensor) -> torch.Tensor:
        out = torch.zeros((*size, *v.shape[1:]), dtype=v.dtype, device=v.device)
        out[rows, pos] = v
        return out

    return flat.apply(scatter, batch_size=size)
