"""Views of a batched env: ``env[index]`` selects some of its sub-envs.

As in TorchRL, indexing a :class:`~streamrl.envs.SerialEnv` or :class:`~streamrl.envs.ParallelEnv`
returns an env of the same class over the selected sub-envs, with batch size ``[k,
*sub_batch]``: they are the indexed env's own sub-envs (its workers, for ParallelEnv), not
copies, so stepping the view moves them. Closing the view leaves them open (the indexed env
owns them); closing the indexed env closes its views. A view steps through ``step()``
(sub-env by sub-env, through the rows of its parent), not through preallocated step buffers.

>>> from streamrl.envs import SerialEnv
>>> from streamrl.envs.libs.gym import GymEnv
>>> env = SerialEnv(3, lambda: GymEnv("Pendulum-v1"))
>>> view = env[1:]
>>> isinstance(view, SerialEnv), view.batch_size, view.rollout(4)["action"].shape
(True, torch.Size([2]), torch.Size([2, 4, 1]))
>>> view.close()
>>> env.rollout(2).batch_size
torch.Size([3, 2])
>>> env.close()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from streamrl.envs.batched import SerialEnv, _BatchedEnv
from streamrl.envs.common import EnvClosedError
from streamrl.envs.parallel import ParallelEnv
from streamrl.envs.step_buffers import StepBuffers

__all__ = ["make_view", "select_rows"]


def select_rows(index: Any, n: int) -> list[int]:
    """The sub-envs (rows ``0..n-1``) that ``index`` selects: an int (negative counts from
    the end), a slice, a sequence or 1-d tensor of ints, or a boolean mask of length ``n``.

    >>> select_rows(-1, 3), select_rows(slice(1, None), 3), select_rows([True, False, True], 3)
    ([2], [1, 2], [0, 2])
    """
    if isinstance(index, tuple):
        if len(index) != 1:
            raise IndexError(
                "a batched env is indexed along its first dim (its sub-envs); found an index "
                f"of {len(index)} dims"
            )
        index = index[0]
    if isinstance(index, torch.Tensor):
        if index.dim() > 1:
            raise IndexError(f"expected a 0-d or 1-d index tensor, found {index.dim()} dims")
        if index.dtype != torch.bool and index.is_floating_point():
            raise TypeError(f"expected an index tensor of ints or bools, found {index.dtype}")
        index = index.tolist()
    if isinstance(index, bool) or not isinstance(index, int | slice | Sequence) or isinstance(
        index, str
    ):
        raise TypeError(
            "expected an int, a slice, a sequence of ints or a boolean mask, found "
            f"{type(index).__name__}"
        )
    if isinstance(index, slice):
        rows = list(range(n))[index]
    elif isinstance(index, int):
        rows = [_row(index, n)]
    elif len(index) and all(isinstance(i, bool) for i in index):
        if len(index) != n:
            raise IndexError(f"a boolean mask of {n} sub-envs expected, found {len(index)}")
        rows = [i for i, keep in enumerate(index) if keep]
    else:
        for i in index:
            if isinstance(i, bool) or not isinstance(i, int):
                raise TypeError(f"expected ints in the index, found {type(i).__name__}")
        rows = [_row(i, n) for i in index]
    if not rows:
        raise ValueError(f"the index {index!r} selects no sub-env")
    if len(set(rows)) != len(rows):
        raise ValueError(f"the index selects a sub-env twice: rows {rows}")
    return rows


def _row(i: int, n: int) -> int:
    if not -n <= i < n:
        raise IndexError(f"index {i} is out of range for {n} sub-envs")
    return i % n


def make_view(parent: _BatchedEnv, rows: list[int]) -> _BatchedEnv:
    """A view of ``parent`` over its sub-envs ``rows`` (see the module docstring)."""
    view = parent.__dict__.get("_view_of")
    if view is not None:  # a view of a view selects sub-envs of the first parent
        return make_view(view, [parent._rows[r] for r in rows])
    if isinstance(parent, ParallelEnv):
        return _ParallelEnvView(parent, rows)
    if isinstance(parent, SerialEnv):
        return _SerialEnvView(parent, rows)
    raise TypeError(f"expected a SerialEnv or ParallelEnv, found {type(parent).__name__}")


class _View:
    """What a view changes of its batched env class: its steps, resets, seeds and states go
    to the parent's sub-envs ``rows``; it owns nothing."""

    _view_of: _BatchedEnv
    _rows: list[int]

    def __init__(self, parent: _BatchedEnv, rows: list[int]) -> None:
        _BatchedEnv.__init__(
            self,  # type: ignore[arg-type]
            len(rows),
            [parent.create_env_fn[i] for i in rows],
            [parent.create_env_kwargs[i] for i in rows],
            device=parent.device,
        )
        # (not through EnvBase.__setattr__: the parent is no sub-module of its view)
        self.__dict__["_view_of"] = parent
        self._rows = list(rows)

    def _start(self) -> None:
        self._view_of._ensure_started()
        self._set_meta([self._view_of._meta] * self.num_workers)

    def _flat_buffers(self, T: int) -> StepBuffers | None:
        return None  # a view steps through its parent's rows (the general path)

    def step_buffers(self, T: int) -> StepBuffers | None:
        self._check_open()
        return None

    def _check_open(self) -> None:
        if self._closed:
            raise EnvClosedError(f"this view of sub-envs {self._rows} is closed")
        if self._view_of.is_closed:
            raise EnvClosedError(
                f"the {type(self._view_of).__name__} this view selects sub-envs "
                f"{self._rows} of is closed"
            )

    def _map(self, rows: list[int] | None) -> list[int]:
        return list(self._rows) if rows is None else [self._rows[r] for r in rows]

    def _reset_rows(self, rows: list[int]) -> None:
        parent, prows = self._view_of, self._map(rows)
        parent._sync_state()
        parent._io.take_inputs(self._io, rows, prows)
        parent._reset_rows(prows)
        for k, v in self._state.items():
            v[rows] = parent._state[k][prows]

    def _step_io(self, rows: list[int] | None = None) -> None:
        parent = self._view_of
        mine = list(range(self.num_workers)) if rows is None else rows
        prows = self._map(mine)
        parent._sync_state()
        for k in parent._obs_keys:  # the root's observations the sub-envs step from
            parent._state[k][prows] = self._state[k][mine]
        parent._io.take_inputs(self._io, mine, prows)
        parent._step_io(prows)
        for k, v in self._io.outputs.items():
            v[mine] = parent._io.outputs[k][prows]
        for k in (*parent._obs_keys, *parent._done_keys):  # the parent's root follows
            parent._state[k][prows] = self._io.outputs[k][mine]

    def _seed_rows(self, rows: list[int], seeds: list[int | None]) -> None:
        self._view_of._seed_rows(self._map(rows), seeds)

    def _sub_states(self, rows: list[int] | None = None) -> list[dict]:
        return self._view_of._sub_states(self._map(rows))

    def _check_sub_states(self, states: list[dict], rows: list[int] | None = None) -> None:
        self._view_of._check_sub_states(states, self._map(rows))

    def _restore_sub_states(self, states: list[dict], rows: list[int] | None = None) -> None:
        self._view_of._restore_sub_states(states, self._map(rows))

    def _close(self) -> None:
        pass  # the parent owns the sub-envs

    def __getstate__(self) -> dict:
        raise TypeError(
            "a view of a batched env cannot be pickled (its sub-envs belong to the parent "
            "env); pickle the parent before its first use instead"
        )

    def __repr__(self) -> str:
        return (
            f"{type(self._view_of).__name__}(view of sub-envs {self._rows} of "
            f"{self._view_of!r}, batch_size={self.batch_size})"
        )


class _SerialEnvView(_View, SerialEnv):
    """A :class:`SerialEnv` over some sub-envs of another (``env[index]``)."""


class _ParallelEnvView(_View, ParallelEnv):
    """A :class:`ParallelEnv` over some workers of another (``env[index]``)."""

    def __init__(self, parent: _BatchedEnv, rows: list[int]) -> None:
        _View.__init__(self, parent, rows)
        self._pids = [parent._pids[i] for i in rows]  # (worker_pids)
        for name in ("mp_start_method", "num_threads", "num_sub_threads", "timeout",
                     "spin_wait", "daemon", "shutdown_timeout", "serial_for_single"):
            setattr(self, name, getattr(parent, name))
