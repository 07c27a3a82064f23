"""Compact on-disk layouts of TED data (TorchRL's transition format) for storage checkpoints.

A TED batch ``[N]`` stores each step's observation twice: at the root (``obs[t]``) and under
``"next"`` (``("next", "obs")[t]``, which equals ``obs[t + 1]`` inside a trajectory). The flat
layout keeps each trajectory's ``L`` observations plus its final next observation (``L + 1``
rows), moves the ``"next"`` done flags and rewards to the root (the root's own done flags are
assumed False, and are rebuilt as False for every moved done flag) and records the storage's write head (``shift``) and
whether it is full (``is_full``). The nested layout holds the same per trajectory, as nested
tensors (one row per trajectory); the H5 layout holds one group per trajectory.

The layouts assume (and do not check) that ``("next", key)[t] == key[t + 1]`` whenever step
``t`` does not end a trajectory; a step ends one when its ``done_key`` is set, when it is the
last row, or (full storage) when it is the last row written (``shift - 1``).
"""

from __future__ import annotations

import os
import warnings
from typing import cast

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.data.replay_buffers.trajectories import DEFAULT_DONE_KEYS, find_start_stop_traj

__all__ = ["Flat2TED", "H5Combine", "H5Split", "Nested2TED", "TED2Flat", "TED2Nested"]


def _tuple(key) -> tuple[str, ...]:
    return key if isinstance(key, tuple) else (key,)


def _leaves(td: TensorDictBase) -> list[tuple[tuple[str, ...], torch.Tensor]]:
    """``(key as a tuple, tensor)`` for every leaf of ``td``."""
    return [
        (_tuple(k), cast(torch.Tensor, v))
        for k, v in td.items(include_nested=True, leaves_only=True)
    ]


def _check_td(data, who: str) -> TensorDictBase:
    if not isinstance(data, TensorDictBase):
        raise TypeError(f"{who} takes a TensorDict, found {type(data).__name__}")
    return data


def _ends(done: torch.Tensor, shift: int, is_full: bool) -> torch.Tensor:
    """Per-step end flags: the done flag, the last row, and (full storage) the row before shift."""
    n = done.shape[0]
    end = done.reshape(n, -1).bool().any(-1)
    if is_full and 0 < shift < n:
        end[shift - 1] = True
    end[-1] = True
    return end


def _positions(end: torch.Tensor) -> torch.Tensor:
    """Row of step ``t`` in a layout that appends one row after each trajectory's last step."""
    before = torch.cumsum(end.long(), 0) - end.long()
    return torch.arange(end.numel()) + before


class _Keys:
    """The keys a layout moves: done flags, rewards, and where shift/is_full go."""

    def __init__(self, done_key, shift_key, is_full_key, done_keys, reward_keys) -> None:
        self.done_key = done_key
        self.shift_key = shift_key
        self.is_full_key = is_full_key
        self.done_keys = tuple(done_keys)
        self.reward_keys = tuple(reward_keys)
        self._done = {_tuple(k) for k in self.done_keys}
        self._moved = self._done | {_tuple(k) for k in self.reward_keys}


class TED2Flat(_Keys):
    """Save hook: a TED batch ``[N]`` to the flat layout (a TensorDict with batch size ``[]``).

    Each ``"next"`` entry that is also a root entry (an observation) is dropped but for each
    trajectory's final step, whose next value follows the trajectory's rows (``L + 1`` rows per
    trajectory); ``"next"`` done flags and rewards go to the root in place of the root's done
    flags; other ``"next"`` entries stay; ``shift_key`` and ``is_full_key`` hold :attr:`shift`
    (the storage's write head, set by the checkpointer; default ``N``) and :attr:`is_full`.

    Args:
        done_key: where the trajectory ends are read.
        shift_key: where the write head goes.
        is_full_key: where the "storage is full" flag goes.
        done_keys: ``"next"`` entries moved to the root as done flags.
        reward_keys: ``"next"`` entries moved to the root as rewards.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> done = torch.tensor([[False], [True], [False]])
    >>> ted = TensorDict({"obs": torch.tensor([0., 1., 10.]), "done": torch.zeros(3, 1, dtype=torch.bool),
    ...     "next": {"obs": torch.tensor([1., 2., 11.]), "done": done, "reward": torch.ones(3)}}, [3])
    >>> flat = TED2Flat(done_keys=("done",))(ted)
    >>> flat["obs"].tolist(), flat["done"].reshape(-1).tolist(), "next" in flat.keys()
    ([0.0, 1.0, 2.0, 10.0, 11.0], [False, True, False], False)
    >>> bool((Flat2TED(done_keys=("done",))(flat) == ted).all())
    True
    """

    def __init__(
        self,
        done_key=("next", "done"),
        shift_key="shift",
        is_full_key="is_full",
        done_keys=DEFAULT_DONE_KEYS,
        reward_keys=("reward",),
    ) -> None:
        super().__init__(done_key, shift_key, is_full_key, done_keys, reward_keys)
        self.shift: int | None = None
        self.is_full = False

    def _flatten(self, data: TensorDictBase) -> tuple[TensorDict, torch.Tensor]:
        """The flat layout and the end flags of ``data``."""
        data = _check_td(data, type(self).__name__)
        if data.batch_dims != 1 or data.batch_size[0] == 0:
            raise ValueError(
                f"{type(self).__name__} takes a TED batch with one non-empty batch dim, found "
                f"batch size {list(data.batch_size)}"
            )
        n = data.batch_size[0]
        done = data.get(self.done_key, None)
        if done is None:
            raise KeyError(f"done key {self.done_key!r} not in the data")
        shift = n if self.shift is None else int(self.shift)
        end = _ends(done, shift, bool(self.is_full))
        pos = _positions(end)
        nxt = data.get("next", None)
        next_items = {} if nxt is None else dict(_leaves(nxt))
        flat = TensorDict(batch_size=[])
        for key, value in _leaves(data):
            if key[0] == "next" or (key in self._done and key in next_items):
                continue
            following = next_items.get(key)
            if following is not None and following.shape == value.shape and (
                following.dtype == value.dtype
            ) and key not in self._moved:
                out = value.new_empty(torch.Size([n + int(end.sum()), *value.shape[1:]]))
                out[pos] = value
                out[pos[end] + 1] = following[end]
                value = out
            flat.set(key, value)
        for key, value in next_items.items():
            if key in self._moved:
                flat.set(key, value)
            elif key not in flat.keys(include_nested=True, leaves_only=True) and (
                key not in {_tuple(k) for k in data.keys(True, True)}
            ):
                flat.set(("next", *key), value)
        flat.set(self.shift_key, torch.tensor(shift))
        flat.set(self.is_full_key, torch.tensor(bool(self.is_full)))
        return flat, end

    def __call__(self, data: TensorDictBase, path: str | os.PathLike | None = None):
        """The flat layout of ``data`` (also written, memory-mapped, to ``path`` if given)."""
        flat, _ = self._flatten(data)
        if path is not None:
            flat.memmap(os.fspath(path))
        return flat


class Flat2TED(_Keys):
    """Load hook: the flat layout of :class:`TED2Flat` back to a TED batch ``[N]``.

    Args: as :class:`TED2Flat`; ``done_key`` (default ``"done"``) is read in the flat layout.
    With ``out`` (a TensorDict of at least ``N`` rows), the steps are copied into ``out[:N]``
    and ``out`` is returned.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> flat = TensorDict({"obs": torch.tensor([0., 1., 2.]), "done": torch.tensor([[False], [True]]),
    ...                    "shift": torch.tensor(2), "is_full": torch.tensor(False)}, [])
    >>> ted = Flat2TED(done_keys=("done",))(flat)
    >>> ted["next", "obs"].tolist(), ted["done"].reshape(-1).tolist()
    ([1.0, 2.0], [False, False])
    """

    def __init__(
        self,
        done_key="done",
        shift_key="shift",
        is_full_key="is_full",
        done_keys=DEFAULT_DONE_KEYS,
        reward_keys=("reward",),
    ) -> None:
        super().__init__(done_key, shift_key, is_full_key, done_keys, reward_keys)

    def _unflatten(self, flat: TensorDictBase) -> TensorDict:
        flat = _check_td(flat, type(self).__name__)
        done = flat.get(self.done_key, None)
        if done is None:
            raise KeyError(f"done key {self.done_key!r} not in the flat data")
        n = done.shape[0]
        if n == 0:
            raise ValueError(f"{type(self).__name__}: the flat data holds no step")
        shift = int(flat.get(self.shift_key, torch.tensor(n)))
        is_full = bool(flat.get(self.is_full_key, torch.tensor(False)))
        end = _ends(done, shift, is_full)
        pos = _positions(end)
        n_obs = n + int(end.sum())
        skip = {_tuple(self.shift_key), _tuple(self.is_full_key)}
        ted = TensorDict(batch_size=[n])
        for key, value in _leaves(flat):
            if key in skip:
                continue
            if key[0] == "next":
                ted.set(key, value)
            elif key in self._moved:
                ted.set(("next", *key), value)
                if key in self._done:
                    ted.set(key, torch.zeros_like(value))
            elif value.shape[0] == n_obs:
                ted.set(key, value[pos])
                ted.set(("next", *key), value[pos + 1])
            elif value.shape[0] == n:
                ted.set(key, value)
            else:
                raise ValueError(
                    f"{type(self).__name__}: key {key} has {value.shape[0]} rows, expected {n} "
                    f"(steps) or {n_obs} (observations)"
                )
        return ted

    def __call__(self, data: TensorDictBase, out: TensorDictBase | None = None):
        """The TED batch (copied into ``out[:N]`` and ``out`` returned, if given)."""
        ted = self._unflatten(data)
        if out is None:
            return ted
        out[: ted.batch_size[0]] = ted
        return out


def _nested(rows: list[torch.Tensor]) -> torch.Tensor:
    # Strided nested tensors are what tensordict can memory-map (not jagged ones); torch warns
    # that their API is a prototype on every construction.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The PyTorch API of nested tensors", UserWarning)
        return torch.nested.nested_tensor(rows)


def _split_rows(value: torch.Tensor, lengths: list[int], obs_lengths: list[int]):
    if value.shape[0] == sum(obs_lengths):
        return list(value.split(obs_lengths))
    return list(value.split(lengths))


class TED2Nested(TED2Flat):
    """Save hook: a TED batch to the nested layout (one row per trajectory).

    The layout is :class:`TED2Flat`'s with every per-step entry a nested tensor whose rows are
    the trajectories (their ``L`` steps, or ``L + 1`` observations); trajectory lengths come
    from :func:`find_start_stop_traj`. Arguments as :class:`TED2Flat`.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> done = torch.tensor([[False], [True], [False]])
    >>> ted = TensorDict({"obs": torch.tensor([0., 1., 10.]), "done": torch.zeros_like(done),
    ...     "next": {"obs": torch.tensor([1., 2., 11.]), "done": done}}, [3])
    >>> nested = TED2Nested(done_keys=("done",))(ted)
    >>> [t.tolist() for t in nested["obs"].unbind(0)]
    [[0.0, 1.0, 2.0], [10.0, 11.0]]
    >>> bool((Nested2TED(done_keys=("done",))(nested) == ted).all())
    True
    """

    def __call__(self, data: TensorDictBase, path: str | os.PathLike | None = None):
        """The nested layout of ``data`` (also written, memory-mapped, to ``path`` if given)."""
        flat, end = self._flatten(data)
        _, _, lengths = find_start_stop_traj(end=end, at_capacity=False)
        steps = lengths.tolist()
        obs = [n + 1 for n in steps]
        skip = {_tuple(self.shift_key), _tuple(self.is_full_key)}
        nested = TensorDict(batch_size=[])
        for key, value in _leaves(flat):
            if key in skip:
                nested.set(key, value)
            else:
                nested.set(key, _nested(_split_rows(value, steps, obs)))
        if path is not None:
            nested.memmap(os.fspath(path))
        return nested


class Nested2TED(Flat2TED):
    """Load hook: the nested layout of :class:`TED2Nested` back to a TED batch.

    Arguments as :class:`Flat2TED`.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> nested = TensorDict({"obs": torch.nested.nested_tensor([torch.zeros(3), torch.ones(2)]),
    ...     "done": torch.nested.nested_tensor([torch.tensor([False, True]), torch.tensor([False])])}, [])
    >>> Nested2TED(done_keys=("done",))(nested)["next", "obs"].tolist()
    [0.0, 0.0, 1.0]
    """

    def __call__(self, data, out: TensorDictBase | None = None):
        """The TED batch (copied into ``out[:N]`` and ``out`` returned, if given)."""
        data = _check_td(data, type(self).__name__)
        flat = TensorDict(batch_size=[])
        for key, value in _leaves(data):
            flat.set(key, torch.cat(list(value.unbind(0))) if value.is_nested else value)
        return super().__call__(flat, out)


class H5Split(TED2Flat):
    """The nested layout of :class:`TED2Nested` split into one sub-TensorDict per trajectory.

    Trajectory ``i`` is stored under key ``str(i)`` (its entries are views of the nested
    tensors' rows); ``shift_key`` and ``is_full_key`` stay at the root. This is what
    :class:`H5StorageCheckpointer` writes, one HDF5 group per trajectory. Arguments as
    :class:`TED2Flat`.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> nested = TensorDict({"obs": torch.nested.nested_tensor([torch.zeros(3), torch.ones(2)])}, [])
    >>> split = H5Split()(nested)
    >>> split["1", "obs"].tolist()
    [1.0, 1.0]
    """

    def __call__(self, data):
        """One ``str(i)`` entry per trajectory."""
        data = _check_td(data, type(self).__name__)
        skip = {_tuple(self.shift_key), _tuple(self.is_full_key)}
        out = TensorDict(batch_size=[])
        for key, value in _leaves(data):
            if key in skip:
                out.set(key, value)
                continue
            if not value.is_nested:
                raise ValueError(f"H5Split takes TED2Nested's layout; key {key} is not nested")
            for i, row in enumerate(value.unbind(0)):
                out.set((str(i), *key), row)
        return out


class H5Combine:
    """The per-trajectory layout of :class:`H5Split` back to :class:`TED2Nested`'s.

    Entries ``"0"``, ``"1"``, ... are stacked as nested tensors; the other root entries
    (``shift``, ``is_full``) are kept. With ``out``, the result is copied into ``out``.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> split = TensorDict({"0": {"obs": torch.zeros(3)}, "1": {"obs": torch.ones(2)}}, [])
    >>> [t.shape[0] for t in H5Combine()(split)["obs"].unbind(0)]
    [3, 2]
    """

    def __call__(self, data, out=None):
        """The nested layout (``out`` updated and returned, if given)."""
        data = _check_td(data, "H5Combine")
        ids = sorted((k for k in data.keys() if k.isdigit()), key=int)
        if ids != [str(i) for i in range(len(ids))]:
            raise ValueError(f"H5Combine expects trajectories '0' .. 'n-1', found {ids}")
        nested = TensorDict(batch_size=[])
        for key, value in data.items():
            if key not in ids and not isinstance(value, TensorDictBase):
                nested.set(key, value)
        if ids:
            for key, _ in _leaves(data[ids[0]]):
                rows = [data.get((i, *key)) for i in ids]
                nested.set(key, _nested([torch.as_tensor(r) for r in rows]))
        if out is None:
            return nested
        out.update(nested)
        return out
